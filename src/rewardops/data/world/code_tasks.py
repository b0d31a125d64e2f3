"""Code: a correct vs a buggy Python function, judged by running the tests in a sandboxed subprocess."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import textwrap
from random import Random

from rewardops.data.schema import Objectivity, TaskCategory
from rewardops.data.world.code_specs import SPECS, CodeSpec
from rewardops.data.world.common import Draft, cap_first, pick, pick_index, spin

BUGS_BY_LEVEL: dict[str, list[tuple[CodeSpec, str]]] = {"low": [], "medium": []}
for _spec in SPECS:
    for _body, _level in _spec.bugs:
        BUGS_BY_LEVEL[_level].append((_spec, _body))

PROMPTS = (
    "Write a Python function `{fn}({params})` that {desc}.",
    "Implement `{fn}` in Python. It [should|must] {verb_desc}.",
    "Can you [give me|write] a Python function named {fn} which {desc}?",
    "I need a [small|little] helper `{fn}({params})` that {desc}. Python, please.",
    "[Please write|Write] {fn}({params}) in Python: it {desc}.",
    "Python question: how would you write a function {fn} that {desc}?",
)
INTROS = ("Here's an implementation:", "Here is one way to do it:", "Sure:", "This should work:", "")
_CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def _verbify(desc: str) -> str:
    """'returns the sum' -> 'return the sum' (for 'it should ...')."""
    first, _, rest = desc.partition(" ")
    if first.endswith("es") and first[:-2].endswith(("ss", "sh", "ch", "x")):
        first = first[:-2]
    elif first.endswith("s"):
        first = first[:-1]
    return f"{first} {rest}"


def render_function(spec: CodeSpec, fn: str, body: str, typed: bool, docstring: str | None) -> str:
    sig = f"def {fn}({spec.typed if typed else spec.params + '):'}"
    if typed:
        sig += ":"
    lines = [sig]
    if docstring:
        lines.append(f'    """{cap_first(docstring)}."""')
    lines.append(textwrap.indent(body, "    "))
    return "\n".join(lines)


def suite_for(spec: CodeSpec, fn: str) -> str:
    return "\n".join(t.replace("{fn}", fn) for t in spec.tests)


def extract_code(response: str) -> str:
    m = _CODE_BLOCK.search(response)
    return m.group(1) if m else response


# The sandbox a response's code runs in (paper §3.1's verifiable code tasks are checked by running
# them; the code comes from data, so it is hostile until proven otherwise):
SANDBOX_CPU_SECONDS = 10  # RLIMIT_CPU
SANDBOX_MEMORY_BYTES = 512 << 20  # RLIMIT_AS
SANDBOX_FILE_BYTES = 1 << 20  # RLIMIT_FSIZE: the largest file it may write (in its temporary folder)
SANDBOX_OPEN_FILES = 64  # RLIMIT_NOFILE

# Runs first in the child, before the program: rlimits, then an audit hook (which Python cannot
# remove) refusing sockets, processes, native code, rlimit changes and writes outside the folder.
_PRELUDE = r"""
import resource, sys
cpu, mem, fsize, nofile = (int(a) for a in sys.argv[1:5])
for limit, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, mem), (resource.RLIMIT_FSIZE, fsize),
                     (resource.RLIMIT_NOFILE, nofile), (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(limit, (value, value))
with open("program.py", encoding="utf-8") as fh:
    source = fh.read(64 << 20)  # the program file this process wrote (code + tests)
def _guard(event, args,
           _blocked=("socket.", "subprocess.", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                     "os.system", "os.kill", "os.killpg", "os.chdir", "os.chroot", "ctypes.", "resource.setrlimit",
                     "resource.prlimit", "sys.addaudithook", "sys.settrace", "sys.setprofile",
                     "code.__new__", "function.__new__", "mmap.",
                     "sqlite3.", "urllib.", "http.", "ftplib.", "smtplib.", "telnetlib.", "webbrowser.", "pty."),
           _modules=frozenset({"socket", "_socket", "ssl", "_ssl", "ctypes", "_ctypes", "subprocess",
                               "_posixsubprocess", "multiprocessing", "_multiprocessing", "gc", "mmap", "pty",
                               "asyncio", "select", "selectors", "signal", "threading", "_thread"})):
    if event.startswith(_blocked) or (event == "import" and args[0].partition(".")[0] in _modules):
        raise PermissionError("sandbox: " + event + " is not allowed")
    if event in ("object.__setattr__", "object.__delattr__") and type(args[0]).__name__ in ("function", "code"):
        raise PermissionError("sandbox: " + event + " on a function is not allowed")
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & 0o103)
        if writes and (not isinstance(path, str) or path.startswith("/") or ".." in path):
            raise PermissionError("sandbox: writing outside the temporary folder is not allowed")
sys.addaudithook(_guard)
del resource
exec(compile(source, "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


def _network_isolation() -> list[str]:
    """A command prefix that runs in an empty network namespace (`unshare --net`, mapped to root
    of a new user namespace) when this machine allows it; [] otherwise (the audit hook still
    refuses sockets inside Python)."""
    global _UNSHARE
    if _UNSHARE is None:
        import shutil

        exe = shutil.which("unshare")
        prefix = [exe, "--net", "--map-root-user"] if exe else []
        if prefix:
            try:
                ok = subprocess.run([*prefix, sys.executable, "-I", "-S", "-c", "pass"], capture_output=True,
                                    timeout=20, env={}).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            prefix = prefix if ok else []
        _UNSHARE = prefix
    return list(_UNSHARE)


_UNSHARE: list[str] | None = None


def run_tests(code: str, tests: str, timeout: float = 10.0, cpu_seconds: int | None = None) -> bool:
    """Run `code` then `tests` in a sandbox; True iff every test ran and passed in time.

    The sandbox: a fresh isolated interpreter (`-I -S`) with an empty environment (no credential
    variables), working in a new temporary folder that is removed afterwards; CPU seconds,
    address space, file size and open files capped by rlimits; no network (an empty network
    namespace where the machine allows one, and in any case an audit hook refusing sockets,
    subprocesses, native code and writes outside the folder); killed after `timeout` seconds.

    A one-off token printed after the last test proves the tests actually ran: code that
    exits early with status 0 (sys.exit(0), os._exit(0)) does not pass.
    """
    import tempfile

    token = secrets.token_hex(16)
    program = f"{code}\n\n{tests}\nprint({token!r})\n"
    cpu = cpu_seconds if cpu_seconds is not None else max(1, min(SANDBOX_CPU_SECONDS, int(timeout) + 1))
    limits = [str(cpu), str(SANDBOX_MEMORY_BYTES), str(SANDBOX_FILE_BYTES), str(SANDBOX_OPEN_FILES)]
    with tempfile.TemporaryDirectory(prefix="rewardops-verify-") as folder:
        with open(f"{folder}/program.py", "w", encoding="utf-8") as fh:
            fh.write(program)
        argv = [*_network_isolation(), sys.executable, "-I", "-S", "-B", "-c", _PRELUDE, *limits]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout, cwd=folder, env={},
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0 and token.encode() in done.stdout


def build_code(rng: Random, controversiality: str) -> Draft:
    spec, bug = pick(rng, BUGS_BY_LEVEL[controversiality if controversiality in BUGS_BY_LEVEL else "low"])
    fn = pick(rng, spec.names)
    desc = pick(rng, spec.descriptions)
    typed = rng.random() < 0.5
    docstring = desc if rng.random() < 0.5 else None
    ti = pick_index(rng, PROMPTS)
    prompt = spin(rng, PROMPTS[ti].format(fn=fn, params=spec.params, desc=desc, verb_desc=_verbify(desc)))
    intro = pick(rng, INTROS)

    def respond(body: str) -> str:
        code = render_function(spec, fn, body, typed, docstring)
        return (intro + "\n\n" if intro else "") + f"```python\n{code}\n```"

    return Draft(
        prompt=prompt,
        chosen=respond(spec.correct),
        rejected=respond(bug),
        task_category=TaskCategory.CODE.value,
        objectivity=Objectivity.OBJECTIVE.value,
        controversiality=controversiality,
        desired_attributes=cap_first(f"a correct Python function {fn} that {desc}, including edge cases; readable code"),
        annotation_guideline=(
            f"Trace or run both versions of {fn} on typical inputs and edge cases (empty input, boundaries, "
            "negative or repeated values where they apply). The implementation that is correct on all of them "
            "wins; style and length do not matter if the code is wrong."),
        template=f"code/{spec.id}/{ti}",
        group=f"code:{spec.id}",
        verifier={"kind": "code", "function": fn, "tests": suite_for(spec, fn)},
    )
