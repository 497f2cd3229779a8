"""Run a Containerfile's build stage in a Debian root made by mmdebstrap, where Docker cannot run.

    sudo python3 scripts/replay_containerfile.py packaging/enclave/Containerfile --context . \
        --context release=R --context gramine=G --target release --out OUT [--keep-root DIR]

The base image is stood in for by `mmdebstrap --variant=minbase` of the suite the release pins (what
debian:<suite>-slim is built from); BASE is set to that stand-in's name with the sha256 of its tarball, so the
Containerfile's digest check runs too. Then every instruction of the build stage is carried out in order, as
Docker would: ARG and ENV set the environment of the following RUNs, COPY copies from the build context (minus
the Containerfile's .dockerignore patterns) or a named context, WORKDIR sets the directory, RUN runs `/bin/sh -c`
in the root (chroot, with /dev and /proc mounted, the host's network and resolv.conf). The stage named --target
(`FROM scratch AS release` + `COPY --from=build SRC /`) is exported to OUT, as `docker build -o OUT` would.

One addition Docker would not make: the host's CA bundle is placed at /build/ca-certificates.crt, because this
machine reaches PyPI only through a proxy with its own CA (in-root.sh uses it for transport only; every wheel is
checked by sha256). Needs root and mmdebstrap.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CA_BUNDLE = os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) for every instruction, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        current += raw.rstrip("\\").rstrip() + " " if raw.endswith("\\") else raw
        if not raw.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    return any(
        fnmatch.fnmatch(relative, p.lstrip("*/")) or any(fnmatch.fnmatch(part, p.lstrip("*/")) for part in parts)
        for p in patterns
    )


def copy_into(source: Path, target: Path, patterns: list[str]) -> None:
    """COPY SRC DEST: a file to DEST (a directory when DEST ends with /), a directory's contents into DEST."""
    if source.is_file():
        destination = target / source.name if str(target).endswith("/") or target.is_dir() else target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
        return
    for parent, dirs, names in os.walk(source):
        relative_parent = os.path.relpath(parent, source)
        dirs[:] = [d for d in dirs if not ignored(os.path.normpath(os.path.join(relative_parent, d)), patterns)]
        for name in names:
            relative = os.path.normpath(os.path.join(relative_parent, name))
            if not ignored(relative, patterns):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.join(parent, name), target / relative, follow_symlinks=False)


def run_in_root(root: Path, command: str, env: dict[str, str], workdir: str) -> None:
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    inner = f"cd {shlex.quote(workdir)} && exec env -i {exports} /bin/sh -c {shlex.quote(command)}"
    script = (
        f"mount --bind /dev {root}/dev && mount -t proc proc {root}/proc && "
        f"exec chroot {root} /bin/sh -c {shlex.quote(inner)}"
    )
    subprocess.run(["unshare", "-m", "sh", "-c", script], check=True)  # noqa: S603, S607 (fixed tools)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("containerfile", type=Path)
    parser.add_argument("--context", action="append", default=[], help="DIR (the build context) or NAME=DIR")
    parser.add_argument("--build-arg", action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--target", default="release")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--suite", default="bookworm")
    parser.add_argument("--keep-root", type=Path, default=None, help="build in this directory and keep it")
    args = parser.parse_args(argv)
    contexts = {c.split("=", 1)[0]: Path(c.split("=", 1)[1]) for c in args.context if "=" in c}
    contexts[""] = Path(next((c for c in args.context if "=" not in c), "."))
    ignore_file = args.containerfile.with_name(args.containerfile.name + ".dockerignore")
    patterns = [p.strip() for p in ignore_file.read_text().splitlines() if p.strip()] if ignore_file.exists() else []
    build_args = dict(a.split("=", 1) for a in args.build_arg)

    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep_root or Path(scratch) / "root"
        tarball = Path(scratch) / "base.tar"
        subprocess.run(["mmdebstrap", "--variant=minbase", args.suite, str(tarball)], check=True)  # noqa: S603, S607 (fixed tools)
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-C", str(root), "-xf", str(tarball)], check=True)  # noqa: S603, S607 (fixed tools)
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        (root / "build").mkdir(exist_ok=True)
        shutil.copyfile(CA_BUNDLE, root / "build/ca-certificates.crt")
        build_args.setdefault("BASE", f"mmdebstrap-{args.suite}-minbase@sha256:{digest}")

        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
        workdir, stage, exported = "/", None, False
        for keyword, rest in instructions(args.containerfile):
            if keyword == "FROM":
                stage = rest.split()[-1] if " AS " in rest.upper() else rest
                if stage == args.target:
                    continue
                if stage != "build":
                    break  # stages after the target's are not needed
            elif stage == args.target and keyword == "COPY":
                options, source, _ = rest.split()
                assert options == "--from=build", rest
                args.out.mkdir(parents=True, exist_ok=True)
                subprocess.run(["cp", "-a", f"{root}{source}/.", str(args.out)], check=True)  # noqa: S603, S607 (fixed tools)
                exported = True
            elif keyword == "ARG":
                name, _, default = rest.partition("=")
                env[name] = build_args.get(name, env.get(name, default))
            elif keyword == "ENV":
                for item in shlex.split(rest):
                    name, _, value = item.partition("=")
                    env[name] = value
            elif keyword == "WORKDIR":
                workdir = rest
            elif keyword == "COPY":
                words = rest.split()
                context = contexts[words[0].removeprefix("--from=")] if words[0].startswith("--from=") else None
                sources, destination = (words[1:-1] if context else words[:-1]), words[-1]
                for source in sources:
                    origin = (context or contexts[""]) / source
                    copy_into(origin, Path(f"{root}{destination}"), patterns if context is None else [])
            elif keyword == "RUN":
                print(f"+ RUN {rest[:110]}{'...' if len(rest) > 110 else ''}", flush=True)
                run_in_root(root, rest, env, workdir)
            elif keyword not in ("EXPOSE", "ENTRYPOINT", "CMD", "LABEL"):
                raise SystemExit(f"unsupported instruction {keyword}")
        if not exported:
            raise SystemExit(f"no stage {args.target!r} exported")
    print(f"exported stage {args.target} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
