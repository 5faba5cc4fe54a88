// dshd's live page: the strip charts of /api/view drawn as plain SVG from
// /api/history, and a node table from /api/cluster, refreshed every interval.
// No library and nothing from the network but this daemon.
//
// Rules of this file: the points kept are exactly what /api/history answers
// for (since, step); each path carries them (data-values, in the history's
// units, "" for unknown; the svg's data-times) so that a test can compare.
// An update asks again from the start of the last step, which may have
// been partial, and replaces it.
"use strict";
(function () {
  const MAX_POINTS = 200; // per chart (2-3 px a point at 1400 px): the first load's step follows from it
  const SVG = "http://www.w3.org/2000/svg";
  const H = 180, LEFT = 58, RIGHT = 10, TOP = 20, BOTTOM = 20;
  const params = new URLSearchParams(location.search);
  const state = {
    view: null, span: 0, step: 0, fields: [], times: [], data: {}, painted: false,
    charts: [], failed: false,
  };
  const $ = (id) => document.getElementById(id);

  function el(name, attrs, parent, ns) {
    const e = ns ? document.createElementNS(SVG, name) : document.createElement(name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  async function getJSON(url) {
    const answer = await fetch(url, { cache: "no-store" });
    if (!answer.ok) throw new Error(url + ": HTTP " + answer.status);
    return answer.json();
  }

  function banner(on) {
    state.failed = on;
    $("banner").hidden = !on;
  }

  // -- numbers --------------------------------------------------------------

  function bytes(v) { // dstat's units: B, k, M, G, 1024-based
    const units = ["B", "k", "M", "G", "T"];
    let i = 0;
    while (v >= 1000 && i < units.length - 1) { v /= 1024; i++; }
    return (i > 0 && v < 10 ? v.toFixed(1) : String(Math.round(v))) + units[i];
  }

  function shown(chart, v) { // a value in the chart's unit, as text
    if (v === null || v === undefined) return "-";
    if (chart.unit === "percent") return v.toFixed(1) + "%";
    if (chart.unit === "bytes/s") return bytes(v) + "/s";
    if (chart.unit === "bytes") return bytes(v);
    return String(Math.round(v * 100) / 100);
  }

  function clock(t) {
    return new Date(t * 1000).toTimeString().slice(0, 8);
  }

  function niceMax(v) { // 1, 2, 5 x 10^n at or above v
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // A node's values of a chart (its fields added up; null if one is unknown).
  function nodeValues(chart, node) {
    const columns = chart.fields.map((f) => (state.data[node] || {})[f] || []);
    return state.times.map((_, i) => {
      let sum = 0;
      for (const c of columns) {
        const v = c[i];
        if (v === null || v === undefined) return null;
        sum += v;
      }
      return sum;
    });
  }

  function aggregate(chart, series) { // the cluster's line: avg or sum of the known values
    return state.times.map((_, i) => {
      let sum = 0, n = 0;
      for (const values of series) {
        if (values[i] !== null) { sum += values[i]; n++; }
      }
      if (!n) return null;
      return chart.aggregate === "avg" ? sum / n : sum;
    });
  }

  // -- the history ----------------------------------------------------------

  function historyUrl(since) {
    return "/api/history?since=" + since + "&step=" + state.step + "&fields=" +
      state.fields.join(",");
  }

  // Take an answer that starts after `cut`: drop what we had after it, append.
  function merge(answer, cut) {
    let keep = state.times.length;
    while (keep > 0 && state.times[keep - 1] > cut) keep--;
    const names = new Set([...Object.keys(state.data), ...Object.keys(answer.nodes)]);
    for (const name of names) {
      const old = state.data[name] || {};
      const got = answer.nodes[name] || {};
      const merged = {};
      for (const f of state.fields) {
        const before = (old[f] || []).slice(0, keep);
        while (before.length < keep) before.push(null);
        const after = got[f] || answer.times.map(() => null);
        merged[f] = before.concat(after);
      }
      state.data[name] = merged;
    }
    state.times = state.times.slice(0, keep).concat(answer.times);
    // Older than the span: gone.
    const oldest = answer.time - state.span;
    let drop = 0;
    while (drop < state.times.length && state.times[drop] < oldest) drop++;
    if (drop) {
      state.times = state.times.slice(drop);
      for (const name of names) {
        for (const f of state.fields) state.data[name][f] = state.data[name][f].slice(drop);
      }
    }
  }

  async function loadHistory(first) {
    let since, cut;
    if (first || !state.times.length) {
      since = -state.span;
      cut = -Infinity;
      state.times = [];
      state.data = {};
    } else { // from the start of the last (maybe partial) step
      cut = Math.floor(state.times[state.times.length - 1] / state.step) * state.step;
      since = cut;
    }
    merge(await getJSON(historyUrl(since)), cut);
  }

  // -- the charts -----------------------------------------------------------

  function buildLegend() {
    const legend = $("legend");
    legend.textContent = "";
    const item = (colour, label, cls) => {
      const span = el("span", { class: "item " + (cls || "") }, legend);
      el("span", { class: "swatch", style: "background:" + colour }, span);
      span.appendChild(document.createTextNode(label));
    };
    for (const n of state.view.nodes) item(state.view.colours[n], n);
    item(state.view.aggregate_colour, "cluster (CPU: average, disk and net: sum)", "aggregate");
  }

  function buildCharts() {
    buildLegend();
    const main = $("charts");
    main.textContent = "";
    state.charts = state.view.charts.map((chart) => {
      const box = el("div", { class: "chart" }, main);
      const svg = el("svg", {
        "data-chart": chart.name, "data-title": chart.title, "data-unit": chart.unit,
        "data-factor": chart.factor, "data-aggregate": chart.aggregate,
      }, box, true);
      svg.addEventListener("mousemove", (e) => hover(e, chart, svg));
      svg.addEventListener("mouseleave", () => { $("tip").hidden = true; cursor(svg, null); });
      return { chart, svg };
    });
  }

  function drawChart(chart, svg) {
    // Drawn at the box's own width in pixels, so that text is never stretched.
    const W = Math.max(300, Math.round(svg.parentNode.clientWidth) || 640);
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    const names = state.view.nodes.filter((n) => n in state.data)
      .concat(Object.keys(state.data).filter((n) => !state.view.nodes.includes(n)).sort());
    const series = names.map((n) => nodeValues(chart, n));
    const total = aggregate(chart, series);
    const f = chart.factor;
    let top = chart.max;
    if (top === null) {
      let most = 0;
      for (const values of series.concat([total])) {
        for (const v of values) if (v !== null && v * f > most) most = v * f;
      }
      let unit = 1; // rates and sizes: a round number of k, M or G
      if (chart.unit !== "percent" && chart.unit !== "") {
        while (most / unit >= 1000) unit *= 1024;
      }
      top = niceMax(most / unit) * unit;
    }
    const t0 = state.times.length ? state.times[0] : 0;
    const t1 = state.times.length ? state.times[state.times.length - 1] : 1;
    const x = (t) => LEFT + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - LEFT - RIGHT);
    const y = (v) => TOP + (1 - Math.min(v * f, top) / top) * (H - TOP - BOTTOM);
    svg.textContent = "";
    svg.setAttribute("data-times", state.times.join(","));
    svg.setAttribute("data-step", state.step);
    svg.setAttribute("data-max", top);
    el("text", { x: LEFT, y: 13, class: "title" }, svg, true).textContent = chart.title;
    for (const frac of [0, 0.5, 1]) {
      const gy = TOP + (1 - frac) * (H - TOP - BOTTOM);
      el("line", { x1: LEFT, x2: W - RIGHT, y1: gy, y2: gy, class: "grid" }, svg, true);
      const label = el("text", { x: LEFT - 4, y: gy + 4, "text-anchor": "end" }, svg, true);
      label.textContent = shown(chart, frac * top).replace("/s", "");
    }
    if (state.times.length) {
      const tx = [[t0, "start"], [(t0 + t1) / 2, "middle"], [t1, "end"]];
      for (const [t, anchor] of tx) {
        el("text", { x: x(t), y: H - 5, "text-anchor": anchor }, svg, true).textContent = clock(t);
      }
    }
    const path = (values) => {
      let d = "", pen = false;
      values.forEach((v, i) => {
        if (v === null) { pen = false; return; }
        d += (pen ? "L" : "M") + x(state.times[i]).toFixed(1) + " " + y(v).toFixed(1);
        pen = true;
      });
      return d || "M0 0";
    };
    const text = (values) => values.map((v) => (v === null ? "" : String(v))).join(",");
    names.forEach((name, k) => {
      el("path", {
        class: "series", d: path(series[k]), stroke: state.view.colours[name] || "#999",
        "data-node": name, "data-values": text(series[k]),
      }, svg, true);
    });
    el("path", {
      class: "aggregate", d: path(total), stroke: state.view.aggregate_colour,
      "data-aggregate": chart.aggregate, "data-values": text(total),
    }, svg, true);
    el("line", { class: "cursor", x1: -10, x2: -10, y1: TOP, y2: H - BOTTOM }, svg, true);
    svg._draw = { names, series, total, x, W };
  }

  function cursor(svg, px) {
    const line = svg.querySelector("line.cursor");
    if (line) { line.setAttribute("x1", px === null ? -10 : px); line.setAttribute("x2", px === null ? -10 : px); }
  }

  function hover(event, chart, svg) {
    const d = svg._draw;
    if (!d || !state.times.length) return;
    const box = svg.getBoundingClientRect();
    const px = (event.clientX - box.left) * (d.W / box.width);
    let best = 0;
    state.times.forEach((t, i) => {
      if (Math.abs(d.x(t) - px) < Math.abs(d.x(state.times[best]) - px)) best = i;
    });
    cursor(svg, d.x(state.times[best]));
    const tip = $("tip");
    tip.textContent = "";
    el("div", {}, tip).textContent = chart.title + " at " + clock(state.times[best]);
    const table = el("table", {}, tip);
    const row = (colour, label, v) => {
      const tr = el("tr", {}, table);
      const name = el("td", {}, tr);
      el("span", { class: "swatch", style: "background:" + colour }, name);
      name.appendChild(document.createTextNode(label));
      el("td", {}, tr).textContent = shown(chart, v === null ? null : v * chart.factor);
    };
    d.names.forEach((n, k) => row(state.view.colours[n] || "#999", n, d.series[k][best]));
    row(state.view.aggregate_colour, chart.aggregate === "avg" ? "average" : "sum", d.total[best]);
    tip.hidden = false;
    const left = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 4);
    tip.style.left = left + "px";
    tip.style.top = event.clientY + 14 + "px";
  }

  // -- the node table -------------------------------------------------------

  function pct(v) { return v === null || v === undefined ? "-" : Math.round(v * 100) + ""; }
  function num(v, digits) { return v === null || v === undefined ? "-" : v.toFixed(digits); }
  function size(v) { return v === null || v === undefined ? "-" : bytes(v); }
  function pair(a, b) { return a === null || b === null || a === undefined || b === undefined ? "-" : bytes(a) + "/" + bytes(b); }

  // Down and left nodes are dimmed, their values unknown; live ones (up,
  // drained, suspect: the last still reports, as far as anyone knows) count in
  // the cluster row; a suspect one's state is marked yellow (page.css).
  const GONE = ["down", "left"];

  function drawTable(cluster) {
    const body = $("nodes").tBodies[0];
    body.textContent = "";
    const order = state.view.nodes;
    const nodes = cluster.nodes.slice().sort((a, b) => {
      const i = order.indexOf(a.name), j = order.indexOf(b.name);
      return (i < 0 ? 1e9 : i) - (j < 0 ? 1e9 : j) || (a.name < b.name ? -1 : 1);
    });
    const sums = { cpus: 0, load: 0, usr: [], sys: [], idl: [], wai: [], read: 0, writ: 0,
      recv: 0, send: 0, jobs: 0, live: 0 };
    for (const n of nodes) {
      const tr = el("tr", { "data-node": n.name, "data-state": n.state, class: n.state }, body);
      const name = el("td", {}, tr);
      el("span", { class: "swatch", style: "background:" + (state.view.colours[n.name] || "#999") }, name);
      name.appendChild(document.createTextNode(n.name));
      const age = n.age === null ? "never" : Math.round(n.age) + "s";
      const used = n.mem_total !== null && n.mem_avail !== null ? n.mem_total - n.mem_avail : null;
      const cells = [
        GONE.includes(n.state) ? n.state + " " + age : n.state,
        num(n.load !== null ? n.load : n.load1, 2), n.cpus === null ? "-" : String(n.cpus),
        pct(n.cpu_user), pct(n.cpu_system), pct(n.cpu_idle), pct(n.cpu_iowait),
        pair(used, n.mem_total), pair(n.swap_used, n.swap_total),
        size(n.disk_read), size(n.disk_write), size(n.net_receive), size(n.net_transmit),
        String(n.jobs_recent),
      ];
      for (const c of cells) el("td", {}, tr).textContent = c;
      if (GONE.includes(n.state)) continue;  // its last report is not its state now
      sums.live++;
      sums.cpus += n.cpus || 0;
      sums.load += (n.load !== null ? n.load : n.load1) || 0;
      for (const [k, f] of [["usr", "cpu_user"], ["sys", "cpu_system"], ["idl", "cpu_idle"], ["wai", "cpu_iowait"]]) {
        if (n[f] !== null) sums[k].push(n[f]);
      }
      for (const [k, f] of [["read", "disk_read"], ["writ", "disk_write"], ["recv", "net_receive"], ["send", "net_transmit"]]) {
        sums[k] += n[f] || 0;
      }
      sums.jobs += n.jobs_recent || 0;
    }
    const avg = (a) => (a.length ? a.reduce((s, v) => s + v, 0) / a.length : null);
    const tr = el("tr", { class: "cluster" }, body);
    const cells = ["cluster", sums.live + "/" + nodes.length + " live", sums.load.toFixed(2),
      String(sums.cpus), pct(avg(sums.usr)), pct(avg(sums.sys)), pct(avg(sums.idl)),
      pct(avg(sums.wai)), "", "", bytes(sums.read), bytes(sums.writ), bytes(sums.recv),
      bytes(sums.send), String(sums.jobs)];
    for (const c of cells) el("td", {}, tr).textContent = c;
    $("status").textContent = nodes.length + " nodes, as " + cluster.self + " sees them at " +
      clock(cluster.time) + " (every " + cluster.interval + " s)";
  }

  // -- the loop ---------------------------------------------------------------

  function paint() {
    for (const { chart, svg } of state.charts) drawChart(chart, svg);
    if (!state.painted) {
      state.painted = true;
      document.body.setAttribute("data-first-paint-ms", Math.round(performance.now()));
    }
    document.body.setAttribute("data-updates", (Number(document.body.getAttribute("data-updates")) || 0) + 1);
  }

  async function update(first) {
    try {
      const [, cluster] = await Promise.all([loadHistory(first), getJSON("/api/cluster")]);
      drawTable(cluster);
      paint();
      banner(false);
    } catch (e) {
      banner(true);
    }
  }

  async function start() {
    try {
      state.view = await getJSON("/api/view");
    } catch (e) {
      banner(true);
      setTimeout(start, 2000);
      return;
    }
    const v = state.view;
    document.title = "dshd " + v.self;
    $("title").textContent = "dshd " + v.version + " on " + v.self;
    // ?since=600 or ?since=-600 (the API's own spelling): ten minutes back either way
    state.span = Math.abs(Number(params.get("since"))) || v.since;
    state.step = Math.round(Math.max(v.interval, state.span / MAX_POINTS) * 1000) / 1000;
    state.fields = [...new Set(v.charts.flatMap((c) => c.fields))];
    buildCharts();
    await update(true);
    const every = Math.max(v.interval, Number(params.get("every")) || 1) * 1000;
    setInterval(() => update(false), every);
    window.addEventListener("resize", () => { if (state.painted) paint(); });
  }

  start();
})();
