"""Reading the project's Dockerfile and following its build without Docker.

* `parse_dockerfile`: the stages and their instructions (continuations and comments handled,
  global `ARG`s substituted into `FROM`).
* `DockerIgnore`: `.dockerignore` matching as Docker does it (the last matching pattern wins, a
  pattern also matches a file through any of its parent folders, `!` re-includes).
* `StageRun`: one stage run on this machine. Its root file system is a folder; container paths
  in `WORKDIR`, `COPY`, `ENV`, `RUN` and `RUN --mount` are mapped into it; `RUN` commands run in
  a shell with the stage's `ENV`. Commands that only make sense as root in an image (users,
  ownership) are recorded and skipped; anything else the runner does not know fails loudly, so
  a new step in the Dockerfile cannot be silently left out.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "SKIPPED_COMMANDS",
    "DockerIgnore",
    "Instruction",
    "Stage",
    "StageRun",
    "exec_form",
    "parse_dockerfile",
    "split_flags",
]

# Image set-up that needs root and changes nothing a test of the installed package can see.
SKIPPED_COMMANDS = frozenset(
    # the base image's users and files; its packages (this machine's come from `make build-deps`)
    {"groupadd", "useradd", "install", "chown", "chmod", "ln", "apt-get", "rm"}
)
# Paths that belong to the base image, not to the stage: never mapped.
_SYSTEM = ("/usr/", "/bin/", "/sbin/", "/lib", "/etc/", "/dev/", "/proc/", "/sys/")
_PATH_TOKEN = re.compile(r"(?<![\w:/.$-])(/[\w.+/-]*)")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue  # comments (also inside continuations) and blank lines
        if not current:
            start = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        lines.append((start, " ".join(part for part in current if part)))
        current = []
    if current:
        lines.append((start, " ".join(current)))
    return lines


def _substitute(text: str, values: dict[str, str]) -> str:
    def replace(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        return values.get(name, "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", replace, text)


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """The global `ARG` defaults and the stages of the Dockerfile at `path`."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            words = [w for w in _substitute(args, global_args).split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(name=name, base=words[0]))
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"{path}:{number}: {keyword} before the first FROM")
            name, _, default = args.partition("=")
            global_args[name.strip()] = default.strip()
        else:
            stages[-1].instructions.append(Instruction(keyword, args, number))
    return global_args, stages


def split_flags(args: str) -> tuple[dict[str, list[str]], str]:
    """Leading `--name=value` flags of an instruction (repeatable) and the rest."""
    flags: dict[str, list[str]] = {}
    rest = args
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        name, _, value = word[2:].partition("=")
        flags.setdefault(name, []).append(value)
        rest = rest.lstrip()
    return flags, rest


def exec_form(args: str) -> list[str] | None:
    """A JSON-array (exec form) argument, or None for the shell form."""
    if not args.startswith("["):
        return None
    value = json.loads(args)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"not an exec form: {args}")
    return value


def _key_values(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}  # legacy `ENV NAME value`
    return dict(word.split("=", 1) for word in words)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", index)
            out.append(pattern[index : end + 1].replace("[!", "[^"))
            index = end
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out))


class DockerIgnore:
    """The patterns of a `.dockerignore` file."""

    def __init__(self, text: str) -> None:
        self.patterns: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = os.path.normpath(line[1:].strip() if include else line).lstrip("/")
            self.patterns.append((include, _pattern_regex(pattern)))

    def excluded(self, relative: str) -> bool:
        """Whether the build context leaves out the file at `relative` (a POSIX path)."""
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for include, regex in self.patterns:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                excluded = not include
        return excluded


@dataclass
class StageRun:
    """One stage of the Dockerfile run in `root` (its file system) on this machine."""

    stage: Stage
    root: Path
    context: Path
    ignore: DockerIgnore
    env: dict[str, str]
    stages: dict[str, StageRun] = field(default_factory=dict)
    workdir: str = "/"
    skipped: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)

    def host(self, container_path: str) -> Path:
        """Where a container path of this stage is on this machine."""
        return self.root / container_path.lstrip("/")

    def map_paths(self, text: str) -> str:
        """`text` with the stage's absolute container paths replaced by host paths."""

        def replace(found: re.Match[str]) -> str:
            path = found.group(1)
            if path == "/" or path.startswith(_SYSTEM):
                return path
            return str(self.host(path))

        return _PATH_TOKEN.sub(replace, text)

    def _container_path(self, path: str) -> str:
        return path if path.startswith("/") else f"{self.workdir.rstrip('/')}/{path}"

    def run(self, *, timeout: float = 600) -> None:
        for instruction in self.stage.instructions:
            handler = getattr(self, f"_do_{instruction.keyword.lower()}", None)
            if handler is None:
                raise AssertionError(
                    f"Dockerfile:{instruction.line}: {instruction.keyword} is not followed by "
                    "the test runner; teach tests/deploy/dockerfile_support.py about it"
                )
            handler(instruction, timeout)

    # instructions ---------------------------------------------------------------------------

    def _do_label(self, instruction: Instruction, timeout: float) -> None:
        pass

    def _do_expose(self, instruction: Instruction, timeout: float) -> None:
        pass

    def _do_healthcheck(self, instruction: Instruction, timeout: float) -> None:
        pass

    def _do_entrypoint(self, instruction: Instruction, timeout: float) -> None:
        pass

    def _do_cmd(self, instruction: Instruction, timeout: float) -> None:
        pass

    def _do_user(self, instruction: Instruction, timeout: float) -> None:
        pass

    def _do_env(self, instruction: Instruction, timeout: float) -> None:
        for name, value in _key_values(instruction.args).items():
            self.env[name] = _substitute(self.map_paths(value), self.env)

    def _do_workdir(self, instruction: Instruction, timeout: float) -> None:
        self.workdir = self._container_path(instruction.args)
        self.host(self.workdir).mkdir(parents=True, exist_ok=True)

    def _do_copy(self, instruction: Instruction, timeout: float) -> None:
        flags, rest = split_flags(instruction.args)
        words = exec_form(rest) or rest.split()
        *sources, destination = words
        target = self._container_path(destination)
        into_folder = destination.endswith("/") or len(sources) > 1
        origin: Path = self.context
        if "from" in flags:
            origin = self.stages[flags["from"][0]].root
        for source in sources:
            path = origin / source.lstrip("/")
            where = self.host(target)
            if path.is_dir():
                self._copy_tree(path, where, filtered="from" not in flags)
                continue
            relative = path.relative_to(self.context).as_posix() if "from" not in flags else ""
            if relative and self.ignore.excluded(relative):
                raise AssertionError(f"Dockerfile:{instruction.line}: {source} is .dockerignored")
            if not path.is_file():
                raise AssertionError(f"Dockerfile:{instruction.line}: {source} does not exist")
            file = where / path.name if into_folder else where
            file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, file)

    def _copy_tree(self, source: Path, destination: Path, *, filtered: bool) -> None:
        for path in sorted(source.rglob("*")):
            if not path.is_file():
                continue
            if filtered and self.ignore.excluded(path.relative_to(self.context).as_posix()):
                continue
            file = destination / path.relative_to(source)
            file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, file)

    def _do_run(self, instruction: Instruction, timeout: float) -> None:
        flags, command = split_flags(instruction.args)
        links: list[Path] = []
        for mount in flags.get("mount", []):
            options = dict(item.split("=", 1) for item in mount.split(","))
            if options.get("type") == "cache":
                continue  # a cache only speeds up the build
            if options.get("type") != "bind" or "from" not in options:
                raise AssertionError(f"Dockerfile:{instruction.line}: mount {mount} not followed")
            source = self.stages[options["from"]].host(options["source"])
            link = self.host(options["target"])
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source, target_is_directory=True)
            links.append(link)
        followed: list[str] = []
        for part in re.split(r"\s*&&\s*", command.strip()):
            program = os.path.basename(part.split()[0])
            if program in SKIPPED_COMMANDS:
                self.skipped.append(part)
            elif program in {"python", "pip"}:
                followed.append(self.map_paths(part))
            else:
                raise AssertionError(
                    f"Dockerfile:{instruction.line}: `{part}` is not followed by the test runner"
                )
        try:
            if followed:
                script = " && ".join(followed)
                self.ran.append(script)
                cwd = self.host(self.workdir)
                cwd.mkdir(parents=True, exist_ok=True)
                result = subprocess.run(
                    ["/bin/sh", "-c", script],
                    cwd=cwd,
                    env=self.env,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
                assert result.returncode == 0, (
                    f"Dockerfile:{instruction.line}: `{script}` failed "
                    f"({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
                )
        finally:
            for link in links:
                link.unlink()
