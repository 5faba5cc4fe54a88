"""Node sets as pdsh and ClusterShell write them: ``node[01-16,20]``, comma
lists, several bracketed ranges in one name (``r[1-2]n[1-3]``), ``@group``
names, and the reverse, folding a list of names back into that form.

Rules of this file: pure (no I/O, nothing imported that dsh's fast path would
mind); a group's members come in as a mapping, so ``@up`` and ``@down`` are
whatever the caller learnt from dshd. Every mistake is one NodeSetError whose
message quotes the text and says what is wrong.

Syntax (what ``expand`` reads):

* ``a,b,c``: a list; a comma inside brackets belongs to the range.
* ``node[1-3]``: node1 node2 node3. ``node[01-10]``: the lower bound's width
  is kept (node01 ... node10), as pdsh and clush do. ``[1-9/2]``: a step.
* ``r[1-2]n[1-2]``: every combination, the leftmost range slowest.
* ``@name``: the members of group ``name`` (an unknown group is an error).
"""

from ..errors import ConfigError

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

MAX_NODES = 100_000  # a typo such as node[1-1000000] is refused, not expanded


class NodeSetError(ConfigError):
    """A node set that cannot be read: bad brackets, ranges or groups."""


def _split_top(text: str) -> list[str]:
    """``text`` split on the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            if depth:
                raise NodeSetError(f"node set {text!r}: brackets inside brackets")
            depth = 1
        elif ch == "]":
            if not depth:
                raise NodeSetError(f"node set {text!r}: ']' without '['")
            depth = 0
        elif ch == "," and not depth:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise NodeSetError(f"node set {text!r}: '[' without ']'")
    parts.append(text[start:])
    return parts


def _range(text: str, whole: str) -> list[str]:
    """``01-03,7`` (the inside of brackets) as ["01", "02", "03", "7"]."""
    found: list[str] = []
    for item in text.split(","):
        bounds, slash, step_text = item.partition("/")
        low, dash, high = bounds.partition("-")
        if not dash:
            high = low
        step = int(step_text) if slash and step_text.isdigit() else 1
        if not (low.isdigit() and high.isdigit()) or (slash and not step_text.isdigit()):
            raise NodeSetError(f"node set {whole!r}: [{text}] is not a list of numbers or ranges")
        if int(low) > int(high):
            raise NodeSetError(f"node set {whole!r}: range {low}-{high} runs backwards")
        if step < 1:
            raise NodeSetError(f"node set {whole!r}: step /{step_text} must be at least 1")
        if (int(high) - int(low)) // step + len(found) >= MAX_NODES:
            raise NodeSetError(f"node set {whole!r}: more than {MAX_NODES} names")
        width = len(low) if low.startswith("0") and len(low) > 1 else 0
        found += [str(n).zfill(width) for n in range(int(low), int(high) + 1, step)]
    return found


def _expand_name(pattern: str, whole: str) -> list[str]:
    """One element of a list, its brackets expanded (``r[1-2]n[1-2]``: four names)."""
    names = [""]
    rest = pattern
    while rest:
        head, bracket, tail = rest.partition("[")
        if "]" in head:
            raise NodeSetError(f"node set {whole!r}: ']' without '['")
        names = [n + head for n in names]
        if not bracket:
            break
        inside, closed, rest = tail.partition("]")
        if not closed:
            raise NodeSetError(f"node set {whole!r}: '[' without ']'")
        values = _range(inside, whole)
        if len(names) * len(values) > MAX_NODES:
            raise NodeSetError(f"node set {whole!r}: more than {MAX_NODES} names")
        names = [n + v for n in names for v in values]
    return names


def expand(text: str, groups: "Mapping[str, Iterable[str]] | None" = None) -> list[str]:
    """The names ``text`` stands for, in its order, each once."""
    if not text.strip():
        raise NodeSetError("empty node set")
    found: dict[str, None] = {}  # (a dict keeps the order)
    for part in _split_top(text.strip()):
        part = part.strip()
        if not part:
            raise NodeSetError(f"node set {text!r}: an empty name between commas")
        if any(ch.isspace() for ch in part):
            raise NodeSetError(f"node set {text!r}: a space in {part!r}")
        if part.startswith("@"):
            if groups is None or part[1:] not in groups:
                known = ", ".join("@" + g for g in sorted(groups or ()))
                raise NodeSetError(
                    f"node set {text!r}: no group {part}" + (f" (groups: {known})" if known else "")
                )
            names = list(groups[part[1:]])
        else:
            names = _expand_name(part, text)
        for name in names:
            found[name] = None
        if len(found) > MAX_NODES:
            raise NodeSetError(f"node set {text!r}: more than {MAX_NODES} names")
    return list(found)


# -- folding -----------------------------------------------------------------------


def _split_number(name: str) -> tuple[str, str, str]:
    """(prefix, the last run of digits, suffix); digits "" if there is none."""
    end = len(name)
    while end and not name[end - 1].isdigit():
        end -= 1
    start = end
    while start and name[start - 1].isdigit():
        start -= 1
    return name[:start], name[start:end], name[end:]


def _runs(numbers: list[str]) -> str:
    """["1", "2", "3", "5"] as "1-3,5" (digit strings of one width, or unpadded)."""
    ordered = sorted(set(numbers), key=int)
    out: list[str] = []
    first = last = ordered[0]
    for n in ordered[1:]:
        if int(n) == int(last) + 1:
            last = n
            continue
        out.append(first if first == last else f"{first}-{last}")
        first = last = n
    out.append(first if first == last else f"{first}-{last}")
    return ",".join(out)


def fold(names: "Iterable[str]") -> str:
    """Names as one node set: ["node1", "node2", "node3", "x"] -> "node[1-3],x".
    Only the last number of a name is folded; zero padding stays as written
    (node09 and node10 fold to node[09-10] when both have width 2)."""
    groups: dict[tuple[str, str, int], list[str]] = {}
    plain: list[str] = []
    for name in dict.fromkeys(names):
        prefix, digits, suffix = _split_number(name)
        if not digits:
            plain.append(name)
            continue
        padded = digits.startswith("0") and len(digits) > 1
        groups.setdefault((prefix, suffix, len(digits) if padded else 0), []).append(digits)
    # An unpadded number as wide as a padded group of the same name joins it (10 with 09).
    for (prefix, suffix, width), numbers in list(groups.items()):
        if width:
            continue
        keep = []
        for n in numbers:
            target = groups.get((prefix, suffix, len(n)))
            if target is not None and len(n) > 1:
                target.append(n)
            else:
                keep.append(n)
        if keep:
            groups[(prefix, suffix, 0)] = keep
        else:
            del groups[(prefix, suffix, 0)]
    parts = []
    for (prefix, suffix, _width), numbers in groups.items():
        inside = _runs(numbers)
        single = len(set(numbers)) == 1
        parts.append(f"{prefix}{inside}{suffix}" if single else f"{prefix}[{inside}]{suffix}")
    return ",".join(sorted(parts + plain, key=natural_key))


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that puts node2 before node10 (brackets are skipped)."""
    key: list[tuple[int, int | str]] = []
    run = ""
    for ch in text.replace("[", "").replace("]", ""):
        if run and ch.isdigit() != run[-1].isdigit():
            key.append((0, int(run)) if run[-1].isdigit() else (1, run))
            run = ""
        run += ch
    if run:
        key.append((0, int(run)) if run[-1].isdigit() else (1, run))
    return (*key, (1, text))  # (n01 and n1: the text decides)
