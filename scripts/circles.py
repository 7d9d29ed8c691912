#!/usr/bin/env python3
"""Lists import circles between the files of Rust crates.

An edge goes from a file to the file of each module it names by path (`crate::a::b`,
`super::x`, `self::y`; outside comments and the `#[cfg(test)]` part at its end), taking the
longest prefix of the path that is a file. A parent's edges to its own submodules are left
out: `mod.rs` declaring and re-exporting its children is how a module is made, not a
dependency. A circle is a set of files that reach one another.

Usage: scripts/circles.py [SRC_DIR...]  (default: src server/src proto/src)
Prints each circle; exits 1 if there is one.
"""

import os
import re
import sys

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def module_of(root, path):
    """The module path of the file `path` of the crate rooted at `root`, as a tuple."""
    parts = os.path.relpath(path, root)[: -len(".rs")].split(os.sep)
    if parts[-1] in ("lib", "main", "mod"):
        parts.pop()
    return tuple(parts)


def code_of(path):
    """The file's text without comments and without its trailing test module."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    return re.sub(r"//[^\n]*", "", text)


def edges(root):
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(d, n)
                files[module_of(root, p)] = p
    out = {p: set() for p in files.values()}
    for mod, path in files.items():
        is_dir_module = os.path.basename(path) in ("lib.rs", "main.rs", "mod.rs")
        for m in PATH.finditer(code_of(path)):
            head, names = m.group(1), m.group(2).split("::")[1:]
            if head == "crate":
                base = ()
            elif head == "self":
                base = mod
            else:
                base = mod[:-1]
            target = base + tuple(names)
            while target not in files and target:
                target = target[:-1]
            dest = files.get(target)
            if dest is None or dest == path:
                continue
            if is_dir_module and target[: len(mod)] == mod:
                continue  # a module's own submodule
            out[path].add(dest)
    return out


def circles(graph):
    """Strongly connected components of more than one file (Tarjan, iterative)."""
    index, low, on, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def main(args):
    roots = args or ["src", "server/src", "proto/src"]
    total = 0
    for root in roots:
        for c in circles(edges(root)):
            total += 1
            print("circle: " + " <-> ".join(c))
    print(f"{total} import circle(s) in {', '.join(roots)}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
