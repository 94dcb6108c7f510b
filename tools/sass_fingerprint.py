"""Fingerprints of the machine code of every kernel in libapnn.so, to show that a refactor of
CUDA source changed no instruction (no GPU needed).

    python3 tools/sass_fingerprint.py bazel-bin/libapnn.so > before.json     # on the old commit
    python3 tools/sass_fingerprint.py bazel-bin/libapnn.so --against before.json

Runs `cuobjdump -sass` (CUDA's binary utilities; on PATH or in $CUOBJDUMP), or reads a saved
listing (a file ending in .txt, e.g. from `cuobjdump -sass lib > listing.txt`), splits the listing
into functions per architecture, and hashes each function's instructions. The function's own name
is left out of the hash but keys the table (without the per-build hash of anonymous namespaces),
so a renamed kernel shows as one removed and one added.
With --against, prints the functions whose code differs, appeared or disappeared, and exits 1 if
any did. Identical fingerprints mean the GPU runs the same instructions: no device run is needed to
verify such a change (a change that alters code still needs one, see docs/architecture.md).
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys


def sass_listing(library):
    if library.endswith(".txt"):
        with open(library) as f:
            return f.read()
    tool = os.environ.get("CUOBJDUMP", "cuobjdump")
    try:
        return subprocess.run([tool, "-sass", library], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit(f"{tool} not found: put CUDA's cuobjdump on PATH or set CUOBJDUMP")


def stable_name(mangled):
    """The name without the per-build hash nvcc puts in anonymous namespaces (it changes with the
    file's contents): `<length>_GLOBAL__N__<hash>_<n>_<file>_<hash>` -> `<file>(anonymous)`."""
    out, at = [], 0
    for m in re.finditer(r"(\d+)_GLOBAL__N__", mangled):
        if m.start() < at:
            continue
        length = int(m.group(1))
        ident = mangled[m.end(1):m.end(1) + length]
        file_part = re.sub(r"^_GLOBAL__N__[0-9a-f]+_\d+_", "", ident)
        out.append(mangled[at:m.start()] + re.sub(r"_[0-9a-f]{8}$", "", file_part) + "(anonymous)")
        at = m.end(1) + length
    return "".join(out) + mangled[at:]


def fingerprints(listing):
    """{"sm_XX/<mangled name>": sha256 of its instructions}."""
    table, arch, name, body = {}, None, None, []

    def close():
        if name is not None:
            key = f"{arch}/{name}"
            digest = hashlib.sha256("\n".join(body).encode()).hexdigest()
            # A function compiled into two objects (the same template in two .cu files) keeps both.
            table[key] = digest if table.get(key, digest) == digest else table[key] + "+" + digest

    for line in listing.splitlines():
        code_for = re.match(r"\s*code for (sm_\w+)", line)
        function = re.match(r"\s*Function : (\S+)", line)
        if code_for or function or line.startswith("Fatbin"):
            close()
            name, body = None, []
            if code_for:
                arch = code_for.group(1)
            if function:
                name = stable_name(function.group(1))
        elif name is not None and line.strip():
            # cuobjdump pads its columns to the widest instruction of the object, and blank lines
            # depend on the function's place in it: spacing only.
            body.append(" ".join(line.split()))
    close()
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library")
    parser.add_argument("--against", help="a JSON file written by an earlier run")
    args = parser.parse_args()
    table = fingerprints(sass_listing(args.library))
    if not args.against:
        json.dump(table, sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    with open(args.against) as f:
        before = json.load(f)
    changed = sorted(k for k in table.keys() & before.keys() if table[k] != before[k])
    added, removed = sorted(table.keys() - before.keys()), sorted(before.keys() - table.keys())
    for title, keys in (("changed", changed), ("added", added), ("removed", removed)):
        for k in keys:
            print(f"{title:8} {k}")
    print(f"{len(table)} functions: {len(changed)} changed, {len(added)} added, {len(removed)} removed; "
          f"{len(table) - len(changed) - len(added)} identical")
    return 1 if changed or added or removed else 0


if __name__ == "__main__":
    sys.exit(main())
