#!/usr/bin/env python3
"""Generate fixtures/legacy/user-cr-v21.tsv: the record type codes, object
type codes, constants and struct layouts (x86-64 ABI) that the Linux-CR v21
headers define, computed from the headers of the user-cr repository.

The headers are read as text (`git show COMMIT:PATH`) and laid out by the
small C-layout calculator below; nothing of user-cr is compiled or copied.
The output is checked in; ckpt-format/tests/v21_user_cr.rs compares the v21
tables of ckpt-format (layout/v21.rs) against it. CI has no network, so the
test reads the checked-in table; re-run this script to regenerate it:

    scripts/user-cr-layout.py GIT_DIR [COMMIT] > fixtures/legacy/user-cr-v21.tsv

GIT_DIR is a clone of the public repository columbia/user-cr. COMMIT defaults
to 84336dc1e24f45f2f4a8dcd7e215fb62c0e0757a (2010-06-14: the last commit
before the ARM port, whose include/ is that of 82822cf "headers: regenrate",
2010-04-25, the v21 kernel headers).

Output lines (tab separated):
    hdr   NAME VALUE          CKPT_HDR_* record type codes
    obj   NAME VALUE          CKPT_OBJ_* shared-object type codes
    const NAME VALUE          every other enum member and numeric #define
    struct NAME SIZE ALIGN    sizeof/alignof of a struct
    field STRUCT PATH OFFSET SIZE CTYPE  one leaf member (nested members as a.b)
"""
import re
import subprocess
import sys

DEFAULT_COMMIT = "84336dc1e24f45f2f4a8dcd7e215fb62c0e0757a"
FILES = [
    "include/linux/checkpoint.h",
    "include/asm-x86/checkpoint_hdr.h",
    "include/linux/checkpoint_hdr.h",
]
# x86-64 (LP64) primitive types: (size, align)
PRIM = {
    "__u8": (1, 1), "__s8": (1, 1), "char": (1, 1),
    "__u16": (2, 2), "__s16": (2, 2),
    "__u32": (4, 4), "__s32": (4, 4), "__be32": (4, 4), "int": (4, 4),
    "__u64": (8, 8), "__s64": (8, 8),
}
# glibc x86-64 system structs the headers use: (size, align, leaf fields)
SYSTEM = {
    "linger": (8, 4, [("l_onoff", 0, 4), ("l_linger", 4, 4)]),
    "sockaddr_un": (110, 2, [("sun_family", 0, 2), ("sun_path", 2, 108)]),
    "sockaddr_in": (16, 4, [("sin_family", 0, 2), ("sin_port", 2, 2),
                            ("sin_addr", 4, 4), ("sin_zero", 8, 8)]),
    "in6_addr": (16, 4, [("s6_addr", 0, 16)]),
}
DEFINED = {"__x86_64__"}


def git_show(git_dir, commit, path):
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"{commit}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def preprocess(text, consts):
    """Drop comments, evaluate #if/#ifdef for x86-64, collect numeric
    #defines into consts; return the remaining C text."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    out, stack = [], []  # stack of (taking, any_taken)
    for line in text.split("\n"):
        s = line.strip()
        live = all(t for t, _ in stack)
        m = re.match(r"#\s*(ifndef|ifdef|if|elif|else|endif|define|include|error)\b\s*(.*)", s)
        if not m:
            if live:
                out.append(line)
            continue
        d, rest = m.group(1), m.group(2).strip()
        if d in ("ifndef", "ifdef", "if"):
            name = rest.split()[0] if rest else ""
            known = name in DEFINED or name in consts
            val = (not known) if d == "ifndef" else known
            stack.append((val, val))
        elif d == "elif":
            t, any_t = stack.pop()
            val = (not any_t) and (rest.split()[0] in DEFINED)
            stack.append((val, any_t or val))
        elif d == "else":
            t, any_t = stack.pop()
            stack.append((not any_t, True))
        elif d == "endif":
            stack.pop()
        elif d == "define" and live:
            dm = re.match(r"([A-Za-z_]\w*)(\()?\s*(.*)", rest)
            if dm and not dm.group(2):
                v = evaluate(dm.group(3), consts)
                if v is not None:
                    consts[dm.group(1)] = v
                elif dm.group(1) not in consts:
                    consts.setdefault(dm.group(1), None)
    return "\n".join(out)


def evaluate(expr, consts):
    expr = expr.strip()
    if not expr:
        return None

    def sub(m):
        v = consts.get(m.group(0))
        if v is None:
            raise KeyError(m.group(0))
        return str(v)
    try:
        e = re.sub(r"\b(?!0x)[A-Za-z_]\w*\b", sub, expr)
    except KeyError:
        return None
    if not re.fullmatch(r"[0-9a-fA-FxX()+\-*/<>| ]+", e):
        return None
    return int(eval(e.replace("/", "//")))  # only digits and operators remain


def tokens(text):
    return re.findall(r"[A-Za-z_]\w*|0[xX][0-9a-fA-F]+|\d+|[{}()\[\];,=*+\-/<>|:]", text)


class Parser:
    def __init__(self, consts):
        self.consts = consts
        self.structs = {}   # name -> (size, align, fields)
        self.enums = []     # (name, value)

    def run(self, toks):
        self.t, self.i = toks, 0
        while self.i < len(self.t):
            tok = self.t[self.i]
            if tok == "enum":
                self.enum()
            elif tok == "struct" and self.is_definition():
                name = self.t[self.i + 1]
                self.i += 2
                layout = self.body("struct")
                self.structs[name] = self.apply_attrs(layout)
                self.skip_to(";")
            else:
                self.skip_to(";")

    def is_definition(self):
        return self.i + 2 < len(self.t) and self.t[self.i + 2] == "{"

    def skip_to(self, stop):
        depth = 0
        while self.i < len(self.t):
            tok = self.t[self.i]
            self.i += 1
            if tok in "({":
                depth += 1
            elif tok in ")}":
                depth -= 1
            elif tok == stop and depth == 0:
                return

    def enum(self):
        self.i += 1
        if self.t[self.i] != "{":
            self.i += 1
        self.i += 1  # {
        value = -1
        while self.t[self.i] != "}":
            name = self.t[self.i]
            self.i += 1
            if self.t[self.i] == "=":
                self.i += 1
                expr = []
                while self.t[self.i] not in (",", "}"):
                    expr.append(self.t[self.i])
                    self.i += 1
                value = evaluate(" ".join(expr), self.consts)
            else:
                value += 1
            self.consts[name] = value
            self.enums.append((name, value))
            if self.t[self.i] == ",":
                self.i += 1
        self.i += 1  # }
        self.skip_to(";")

    def attrs(self):
        """Consume __attribute__((...)) groups; return the aligned() value."""
        align = None
        while self.i < len(self.t) and self.t[self.i] == "__attribute__":
            start = self.i
            self.i += 1
            depth = 0
            while True:
                tok = self.t[self.i]
                self.i += 1
                if tok == "(":
                    depth += 1
                elif tok == ")":
                    depth -= 1
                    if depth == 0:
                        break
            group = self.t[start:self.i]
            if "aligned" in group:
                align = int(group[group.index("aligned") + 2])
        return align

    def apply_attrs(self, layout):
        size, align, fields = layout
        a = self.attrs()
        if a:
            align = max(align, a)
            size = -(-size // align) * align
        return size, align, fields

    def body(self, kind):
        """Parse '{ members }' of a struct or union; return (size, align, fields)."""
        assert self.t[self.i] == "{", self.t[self.i - 3:self.i + 3]
        self.i += 1
        off, size, align, fields = 0, 0, 1, []
        while self.t[self.i] != "}":
            if self.t[self.i] in ("struct", "union") and self.t[self.i + 1] == "{":
                sub_kind = self.t[self.i]
                self.i += 1
                tsize, talign, tfields = self.body(sub_kind)
                tsize, talign, tfields = self.apply_attrs((tsize, talign, tfields))
                decls = self.declarators()
                if not decls:  # anonymous member: its fields join ours
                    decls = [("", 1)]
                members = [(n, tsize * c, talign, tfields if c == 1 else None, tsize,
                            f"{sub_kind}[{c}]") for n, c in decls]
            else:
                if self.t[self.i] == "struct":
                    self.i += 1
                tname = self.t[self.i]
                self.i += 1
                if tname in PRIM:
                    tsize, talign = PRIM[tname]
                    tfields = None
                elif tname in SYSTEM:
                    tsize, talign, leaves = SYSTEM[tname]
                    tfields = [(n, o, s, f"{tname}.{n}") for n, o, s in leaves]
                else:
                    tsize, talign, tfields = self.structs[tname]
                members = [(n, tsize * c, talign, tfields if c == 1 else None, tsize,
                            tname if c == 1 else f"{tname}[{c}]")
                           for n, c in self.declarators()]
            member_align = self.attrs()
            for name, msize, malign, mfields, esize, ctype in members:
                if member_align:
                    malign = max(malign, member_align)
                if kind == "struct":
                    off = -(-off // malign) * malign
                    moff = off
                    off += msize
                    size = off
                else:
                    moff = 0
                    size = max(size, msize)
                align = max(align, malign)
                prefix = name + "." if name else ""
                if mfields is not None and msize == esize:
                    for fname, foff, fsize, fkind in mfields:
                        fields.append((prefix + fname, moff + foff, fsize, fkind))
                else:
                    fields.append((name, moff, msize, ctype))
            assert self.t[self.i] == ";", self.t[self.i - 3:self.i + 3]
            self.i += 1
        self.i += 1  # }
        size = -(-size // align) * align
        return size, align, fields

    def declarators(self):
        """Names (with array element counts) up to ';' or an attribute."""
        decls = []
        while self.t[self.i] not in (";", "__attribute__"):
            if self.t[self.i] == ",":
                self.i += 1
                continue
            name = self.t[self.i]
            self.i += 1
            count = 1
            while self.t[self.i] == "[":
                j = self.t.index("]", self.i)
                count *= evaluate(" ".join(self.t[self.i + 1:j]), self.consts)
                self.i = j + 1
            decls.append((name, count))
        return decls


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    git_dir = sys.argv[1]
    commit = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_COMMIT
    full = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", commit], check=True,
                          capture_output=True, text=True).stdout.strip()
    consts = {}
    p = Parser(consts)
    p.structs["ckpt_hdr"] = (8, 8, [("type", 0, 4, "__u32"), ("len", 4, 4, "__u32")])
    for path in FILES:
        text = preprocess(git_show(git_dir, full, path), consts)
        p.run(tokens(text))
    print(f"# generated by scripts/user-cr-layout.py from columbia/user-cr {full}")
    print("# " + ", ".join(FILES) + "; x86-64 ABI")
    for name, value in p.enums:
        kind = "hdr" if name.startswith("CKPT_HDR_") else \
            "obj" if name.startswith("CKPT_OBJ_") else "const"
        print(f"{kind}\t{name}\t{value}")
    for name, value in sorted(consts.items()):
        if value is not None and not name.startswith("_") and \
                name not in dict(p.enums) and not name.startswith("__NR"):
            print(f"const\t{name}\t{value}")
    for name in sorted(p.structs):
        size, align, fields = p.structs[name]
        print(f"struct\t{name}\t{size}\t{align}")
        for fname, off, fsize, kind in fields:
            print(f"field\t{name}\t{fname}\t{off}\t{fsize}\t{kind}")


if __name__ == "__main__":
    main()
