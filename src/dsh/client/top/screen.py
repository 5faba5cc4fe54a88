"""The live ``dsh top``: curses draws view.render's frame, keys change what it shows.

The daemon is asked in a thread of its own (Poller), once every gossip
interval (the answer's ``interval``), so a daemon slow to answer never holds
the keys; the screen redraws when an answer (or a failure) arrives, when a
key changes the view, and when the terminal is resized (ncurses turns
SIGWINCH into KEY_RESIZE).
"""

from __future__ import annotations

import curses
import signal
import threading
from collections.abc import Callable
from types import FrameType

from .fetch import FetchError
from .log import DEFAULT_INTERVAL
from .rows import next_sort
from .view import Line, render

KEY_TIMEOUT_MS = 100  # how often the loop looks for a new answer between keys
ESCAPE_DELAY_MS = 25  # Esc alone (ncurses waits a second by default for a sequence)
ENTER = (10, 13, curses.KEY_ENTER)
ESCAPE = 27
BACKSPACE = (8, 127, curses.KEY_BACKSPACE)
COLOURS = {"red": curses.COLOR_RED, "green": curses.COLOR_GREEN,
           "yellow": curses.COLOR_YELLOW, "blue": curses.COLOR_BLUE,
           "magenta": curses.COLOR_MAGENTA, "cyan": curses.COLOR_CYAN,
           "white": curses.COLOR_WHITE}  # fmt: skip
ATTRIBUTES = {"bold": curses.A_BOLD, "dim": curses.A_DIM, "reverse": curses.A_REVERSE,
              "underline": curses.A_UNDERLINE}  # fmt: skip


class Poller(threading.Thread):
    """Asks the daemon every interval; ``generation`` counts the answers and failures."""

    def __init__(self, fetch: Callable[[], dict[str, object]]) -> None:
        super().__init__(name="dsh-top-poller", daemon=True)
        self.fetch = fetch
        self.lock = threading.Lock()
        self.data: dict[str, object] | None = None
        self.error: str | None = None
        self.generation = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        interval = DEFAULT_INTERVAL
        while not self.stopping.is_set():
            try:
                data = self.fetch()
            except FetchError as exc:
                with self.lock:
                    self.error = str(exc)
                    self.generation += 1
            else:
                given = data.get("interval")
                if isinstance(given, int | float) and 0 < given < 3600:
                    interval = float(given)
                with self.lock:
                    self.data, self.error = data, None
                    self.generation += 1
            self.stopping.wait(interval)

    def snapshot(self) -> tuple[int, dict[str, object] | None, str | None]:
        with self.lock:
            return self.generation, self.data, self.error


class Screen:
    def __init__(self, window: curses.window, poller: Poller, color: bool, sort: str,
                 filter: str) -> None:  # fmt: skip
        self.window = window
        self.poller = poller
        self.sort = sort
        self.filter = filter
        self.prompt: str | None = None  # the filter being typed
        self.offset = 0
        self.body = 0
        self.styles: dict[str, int] = {}
        self.pairs: dict[str, int] = {}
        background = curses.COLOR_BLACK
        if curses.has_colors():
            # Also without colour: curses.wrapper has started colour, and
            # without the terminal's own default colours every cell would be
            # white on black (a light terminal turned dark by --no-color).
            curses.start_color()
            try:
                curses.use_default_colors()
                background = -1
            except curses.error:
                pass
        if color and curses.has_colors():
            for number, (name, colour) in enumerate(COLOURS.items(), start=1):
                curses.init_pair(number, colour, background)
                self.pairs[name] = curses.color_pair(number)

    def attr(self, style: str) -> int:
        value = self.styles.get(style)
        if value is None:
            value = 0
            for name in style.split():
                value |= ATTRIBUTES.get(name, 0) | self.pairs.get(name, 0)
            self.styles[style] = value
        return value

    def draw(self) -> None:
        _, data, error = self.poller.snapshot()
        height, width = self.window.getmaxyx()
        banner = f"no answer from dshd, retrying: {error}" if error else None
        frame = render(data, width, height, sort=self.sort, filter=self.filter,
                       offset=self.offset, banner=banner, prompt=self.prompt)  # fmt: skip
        self.offset, self.body = frame.offset, frame.body
        self.window.erase()
        for y, line in enumerate(frame.lines):
            self.draw_line(y, line, width)
        self.window.noutrefresh()
        curses.doupdate()

    def draw_line(self, y: int, line: Line, width: int) -> None:
        x = 0
        for text, style in line:
            if x >= width:
                break
            try:
                self.window.addnstr(y, x, text, width - x, self.attr(style))
            except curses.error:  # the bottom-right cell: written, then the cursor cannot move on
                pass
            x += len(text)

    def key(self, key: int) -> bool:
        """False to quit."""
        if key == curses.KEY_RESIZE:
            curses.update_lines_cols()
        elif self.prompt is not None:
            self.prompt_key(key)
        elif key in (ord("q"), ord("Q")):
            return False
        elif key == ord("s"):
            self.sort = next_sort(self.sort)
        elif key == ord("/"):
            self.prompt = ""
        elif key == ESCAPE:
            self.filter = ""
        else:
            step = {curses.KEY_UP: -1, curses.KEY_DOWN: 1, curses.KEY_PPAGE: -self.body,
                    curses.KEY_NPAGE: self.body, curses.KEY_HOME: -(1 << 30),
                    curses.KEY_END: 1 << 30}.get(key)  # fmt: skip
            if step is not None:
                self.offset = max(0, self.offset + step)  # render clamps the end
        return True

    def prompt_key(self, key: int) -> None:
        assert self.prompt is not None
        if key in ENTER:
            self.filter, self.prompt = self.prompt, None
        elif key == ESCAPE:
            self.filter, self.prompt = "", None
        elif key in BACKSPACE:
            self.prompt = self.prompt[:-1]
            self.filter = self.prompt
        elif 32 <= key < 127:
            self.prompt += chr(key)
            self.filter = self.prompt  # the list narrows as the name is typed
        self.offset = 0

    def loop(self) -> int:
        try:
            curses.curs_set(0)
        except curses.error:
            pass
        self.window.keypad(True)
        self.window.timeout(KEY_TIMEOUT_MS)
        drawn = -1
        dirty = True
        while True:
            generation = self.poller.snapshot()[0]
            if dirty or generation != drawn:
                self.draw()
                drawn, dirty = generation, False
            key = self.window.getch()
            if key == -1:
                continue
            if not self.key(key):
                return 0
            dirty = True


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # through curses.wrapper, which gives the terminal back


def run(fetch: Callable[[], dict[str, object]], color: bool, sort: str, filter: str) -> int:
    poller = Poller(fetch)
    poller.start()
    old = signal.signal(signal.SIGTERM, _terminate)

    def main(window: curses.window) -> int:
        curses.set_escdelay(ESCAPE_DELAY_MS)
        return Screen(window, poller, color, sort, filter).loop()

    try:
        return curses.wrapper(main)
    except KeyboardInterrupt:
        return 0
    finally:
        poller.stopping.set()
        signal.signal(signal.SIGTERM, old)
