#!/usr/bin/env python3
"""Every code block in README.md must be exercised by a test. Each block is preceded by a marker:

  <!-- tested: PATH -->   every line of the block is, verbatim, a line of PATH, a file that
                          ctest builds and runs (trailing `# comments` and `VAR=value` settings
                          of shell blocks are the reader's to change and are not compared);
  <!-- run by: PATH -->   the test at PATH extracts the block from README.md and runs it.

Usage: check_readme.py [REPO_ROOT]. Exits 1 naming each block that fails.
"""
import re
import sys
from pathlib import Path

MARKER = re.compile(r"<!--\s*(tested|run by):\s*(\S+)\s*-->")
SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")


def norm(line, lang):
    line = line.strip()
    if lang == "sh":
        line = re.sub(r"\s+#\s.*$", "", line)
        if line.startswith("./"):
            line = line[2:]
    return line


def blocks(text):
    """Yields (line number, language, block lines, marker match or None)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = MARKER.search(lines[k]) if k >= 0 else None
        yield start + 1, lang, lines[start + 1 : j], marker
        i = j + 1


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2])
    readme = (root / "README.md").read_text(encoding="utf-8")
    failures, checked = [], 0
    for lineno, lang, body, marker in blocks(readme):
        where = f"README.md:{lineno} ({lang or 'plain'} block)"
        if marker is None:
            failures.append(f"{where}: no '<!-- tested: FILE -->' or '<!-- run by: TEST -->' marker")
            continue
        kind, path = marker.groups()
        target = root / path
        if not target.is_file():
            failures.append(f"{where}: {path} does not exist")
            continue
        content = target.read_text(encoding="utf-8")
        if kind == "run by":
            if "README.md" not in content:
                failures.append(f"{where}: {path} never reads README.md")
            checked += 1
            continue
        have = {norm(l, lang) for l in content.splitlines()}
        for line in body:
            n = norm(line, lang)
            if not n or (lang == "sh" and SETTING.match(n)):
                continue
            if n not in have:
                failures.append(f"{where}: line not in {path}: {line.strip()!r}")
        checked += 1
    for f in failures:
        print(f, file=sys.stderr)
    if checked == 0:
        failures.append("no code blocks found")
    print(f"{checked} README blocks checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
