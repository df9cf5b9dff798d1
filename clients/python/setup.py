"""Build hooks for the kyrodb package.

The gRPC stubs are generated from KyroDB's proto (``proto/kyro/v1/kyro.proto``
at the repository root) while the package is built, with ``grpc_tools.protoc``
from the build requirements; nothing generated is committed. The proto is
found, in order, in ``$KYRODB_PROTO_DIR``, in the repository this directory
sits in (``../../proto``), or in ``./proto`` (where the sdist command puts a
copy, so an sdist builds on its own).

Generated code refuses runtimes older than the generator, so the package
depends on at least the grpcio and protobuf versions it was built with.
"""

from __future__ import annotations

import os
import re
import shutil
from importlib.metadata import version
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
PROTO_FILE = Path("kyro") / "v1" / "kyro.proto"
# Where the stubs land inside the package: kyrodb/_proto/kyro/v1/kyro_pb2*.py
STUB_PACKAGE = "kyrodb._proto"


def proto_root() -> Path:
    """The directory that holds ``kyro/v1/kyro.proto``."""
    candidates = []
    if os.environ.get("KYRODB_PROTO_DIR"):
        candidates.append(Path(os.environ["KYRODB_PROTO_DIR"]))
    candidates += [HERE.parent.parent / "proto", HERE / "proto"]
    for root in candidates:
        if (root / PROTO_FILE).is_file():
            return root
    searched = ", ".join(str(root / PROTO_FILE) for root in candidates)
    raise FileNotFoundError(f"kyro.proto not found (looked for {searched}); set KYRODB_PROTO_DIR")


def generate_stubs(package_root: Path) -> None:
    """Writes the stubs of kyro.proto under ``package_root/kyrodb/_proto``."""
    import grpc_tools
    from grpc_tools import protoc

    out = package_root.joinpath(*STUB_PACKAGE.split("."))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root()}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        PROTO_FILE.as_posix(),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"grpc_tools.protoc failed: {' '.join(args)}")
    # Every directory on the way is a package.
    for directory in [out, out / "kyro", out / "kyro" / "v1"]:
        (directory / "__init__.py").touch()
    # protoc writes absolute imports of the proto's own path (`from kyro.v1
    # import kyro_pb2`); inside kyrodb they must name the package.
    prefix = STUB_PACKAGE + "."
    for stub in (out / "kyro" / "v1").glob("*.py*"):
        text = stub.read_text()
        fixed = re.sub(r"^from kyro\.v1 import", f"from {prefix}kyro.v1 import", text, flags=re.M)
        fixed = re.sub(r"^import kyro\.v1\.", f"import {prefix}kyro.v1.", fixed, flags=re.M)
        if fixed != text:
            stub.write_text(fixed)


class BuildPyWithStubs(build_py):
    """``build_py`` that also generates the gRPC stubs."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            generate_stubs(HERE / "src")
        else:
            generate_stubs(Path(self.build_lib))


class SdistWithProto(sdist):
    """``sdist`` that ships a copy of the proto, so the sdist builds alone."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        target = Path(base_dir) / "proto" / PROTO_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(proto_root() / PROTO_FILE, target)


def runtime_requirements() -> list[str]:
    """The dependencies, grpcio and protobuf at least as new as the generator."""
    grpc_version = version("grpcio-tools")
    protobuf_version = version("protobuf")
    protobuf_major = int(protobuf_version.split(".")[0])
    return [
        f"grpcio>={grpc_version}",
        f"protobuf>={protobuf_version},<{protobuf_major + 1}",
        "httpx>=0.24",
        "numpy>=1.21",
    ]


setup(
    cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithProto},
    install_requires=runtime_requirements(),
)
