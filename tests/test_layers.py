"""Imports go down the layer table, and no package uses another's private names.

The table below is the one statement of the layers (docs/architecture.md shows it and
says why each layer sits where it does). Every import of every module under
src/neurocodec is read with ``ast``, imports inside functions included, so a lazy import
cannot hide a wrong direction.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Bottom to top. A module may import the layers below its own and its own package;
#: packages side by side in one layer do not import each other.
LAYERS: list[tuple[str, set[str]]] = [
    ("shared", {"errors", "quality", "lazy"}),  # exceptions, the quality scale, lazy attributes: importable by all, import nothing of ours
    ("metrics", {"metrics"}),
    ("coding", {"coding"}),
    ("entropy", {"entropy"}),
    ("transforms", {"transforms"}),
    ("models", {"models"}),
    ("format", {"format"}),
    ("zoo", {"zoo"}),  # below codec: the codec loads models from it; it never runs the codec
    # "neurocodec" is the package root: its lazy names (Codec, compress...) resolve to codec and zoo
    ("codec", {"codec", "neurocodec"}),
    ("files", {"files"}),  # file helpers of batch tools (cli and collection)
    ("tools", {"train", "bench", "collection", "pillow"}),  # pillow: the PIL.Image plugin
    ("cli", {"cli"}),  # the top: nothing imports it (but ``python -m neurocodec``, its entry point)
]
RANK = {package: rank for rank, (_, packages) in enumerate(LAYERS) for package in packages}
LAYER_OF = {package: name for name, packages in LAYERS for package in packages}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = SRC.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _package(dotted: str) -> str:
    """The layer package of a neurocodec module: ``neurocodec.zoo.weights`` -> ``zoo``."""
    parts = dotted.split(".")
    if len(parts) == 1:
        return "neurocodec"
    return "cli" if parts[1] == "__main__" else parts[1]  # python -m neurocodec runs the CLI


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imports(module: str, source: str, is_package: bool = False):
    """(line, imported module, names taken from it) for each neurocodec import in ``source``."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    nodes = [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    for node in sorted(nodes, key=lambda n: n.lineno):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "neurocodec":
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "neurocodec":
                continue
            names = []
            for alias in node.names:  # "from . import zoo" imports the module neurocodec.zoo
                if _is_module(f"{target}.{alias.name}"):
                    yield node.lineno, f"{target}.{alias.name}", []
                else:
                    names.append(alias.name)
            if names:
                yield node.lineno, target, names


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """What in ``source`` (the text of ``module``) goes against the table, one line each."""
    package = _package(module)
    found = []
    for line, target, names in imports(module, source, is_package):
        where = f"{module} (line {line}) imports {target}" + (f" ({', '.join(names)})" if names else "")
        other = _package(target)
        if other == package:
            continue
        unplaced = [p for p in (package, other) if p not in RANK]
        if unplaced:
            found.append(f"{where}: {', '.join(unplaced)} in no layer of tests/test_layers.py")
        elif RANK[other] >= RANK[package]:
            allowed = sorted({p for p, r in RANK.items() if r < RANK[package]})
            found.append(f"{where}: layer {LAYER_OF[package]} may not import layer {LAYER_OF[other]} "
                         f"(it may import {', '.join(allowed) or 'nothing'})")
        private = [part for part in target.split(".")[1:] if _private(part)] + [n for n in names if _private(n)]
        if private:
            found.append(f"{where}: {', '.join(private)} private to {other}")
    return found


def _modules():
    for path in sorted((SRC / "neurocodec").rglob("*.py")):
        yield _module_name(path), path.read_text(encoding="utf-8"), path.name == "__init__.py"


def test_every_package_has_a_layer():
    packages = {_package(module) for module, _, _ in _modules()}
    missing = sorted(packages - set(RANK))
    assert not missing, f"packages in no layer of tests/test_layers.py: {missing}"


def test_imports_follow_the_layer_table():
    found = [v for module, source, is_package in _modules() for v in violations(module, source, is_package)]
    assert not found, "imports against the layer table:\n" + "\n".join(found)


def test_layer_check_names_the_offending_import():
    """The checker itself: a wrong direction, a private name and a lazy import are found."""
    source = ("def lazy():\n"
              "    from ..cli._commands import describe\n"
              "from ..zoo import _cache\n"
              "from .tables import _as_indexes\n")  # private, but inside its own package: fine
    found = violations("neurocodec.coding.cpu", source)
    assert len(found) == 4, found
    assert found[0].startswith("neurocodec.coding.cpu (line 2) imports neurocodec.cli._commands (describe): "
                               "layer coding may not import layer cli")
    assert found[1].endswith("_commands private to cli")
    assert found[2].startswith("neurocodec.coding.cpu (line 3) imports neurocodec.zoo (_cache): layer coding "
                               "may not import layer zoo")
    assert found[3].endswith("_cache private to zoo")
    assert violations("neurocodec.cli._commands", "from ..collection import encode_dir\n") == []
    assert violations("neurocodec.collection.worker", "from ..cli import main\n")
    assert violations("neurocodec.bench.suite", "from ..train import TrainConfig\n")  # tools side by side
    assert violations("neurocodec.errors", "from .quality import DEFAULT_QUALITY\n")  # shared imports nothing
