"""The import graph of chromagen_tf/ and data_prep/: no cycle, arrows down.

Every module is parsed with `ast`, and every import counts: at the top of
the file and inside functions alike, since a lazy import still makes one
module need the other (STYLE.md rule 12). Imports under
`if TYPE_CHECKING:` are left out: they never run.
"""

import ast
import pathlib

import pytest

from tests import conftest

_PACKAGES = ('chromagen_tf', 'data_prep')
# Code that serves or colorizes, and the bundled format, must not need
# training/ (STYLE.md rule 12). A prefix ending in '.' covers a package's
# modules; one without covers that module alone.
_NO_TRAINING = (
    'chromagen_tf.inference',
    'chromagen_tf.inference.',
    'chromagen_tf.serving',
    'chromagen_tf.serving.',
    'chromagen_tf.bundled',
    'chromagen_tf.models',
    'chromagen_tf.models.',
)
_TRAINING = 'chromagen_tf.training'


def _module_files(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Module name -> file, for every .py file of the packages."""
    modules = {}
    for package in _PACKAGES:
        for path in sorted((root / package).rglob('*.py')):
            parts = list(path.relative_to(root).with_suffix('').parts)
            if parts[-1] == '__init__':
                parts.pop()
            modules['.'.join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or (
        isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING'
    )


def _imports(tree: ast.AST):
    """Every Import and ImportFrom node, outside `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _known(name: str, modules) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    parts = name.split('.')
    while parts:
        candidate = '.'.join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(root: pathlib.Path = conftest.REPO_ROOT):
    """{module: {imported module: first line}} over our own modules."""
    modules = _module_files(root)
    graph = {}
    for name, path in modules.items():
        is_package = path.name == '__init__.py'
        edges = {}
        for node in _imports(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ''
                if node.level:
                    package = name.split('.')
                    if not is_package:
                        package.pop()
                    package = package[: len(package) - (node.level - 1)]
                    base = '.'.join(package + ([base] if base else []))
                # `from package import module` imports the module.
                targets = [f'{base}.{alias.name}' for alias in node.names]
            for target in targets:
                known = _known(target, modules)
                if known is not None and known != name:
                    edges.setdefault(known, node.lineno)
        graph[name] = edges
    return graph


def find_cycles(graph) -> list[list[str]]:
    """The strongly connected components with more than one module."""
    index, lowlink, on_stack, stack, components = {}, {}, set(), [], []

    def visit(module):
        index[module] = lowlink[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                lowlink[module] = min(lowlink[module], lowlink[target])
            elif target in on_stack:
                lowlink[module] = min(lowlink[module], index[target])
        if lowlink[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return components


def _describe(graph, component) -> str:
    members = set(component)
    return '; '.join(
        f'{source}:{line} -> {target}'
        for source in component
        for target, line in sorted(graph[source].items())
        if target in members
    )


def _path_to_training(graph, start: str) -> list[str] | None:
    """The shortest chain of imports from start to training/, if any."""
    previous, queue = {start: None}, [start]
    for module in queue:
        for target in sorted(graph[module]):
            if target in previous:
                continue
            previous[target] = module
            if target == _TRAINING or target.startswith(_TRAINING + '.'):
                chain = [target]
                while previous[chain[-1]] is not None:
                    chain.append(previous[chain[-1]])
                return chain[::-1]
            queue.append(target)
    return None


def _must_not_need_training(module: str) -> bool:
    return any(
        module.startswith(prefix) if prefix.endswith('.') else module == prefix
        for prefix in _NO_TRAINING
    )


_GRAPH = import_graph()


def test_graph_sees_imports_inside_functions(tmp_path):
    package = tmp_path / 'chromagen_tf'
    (package / 'inner').mkdir(parents=True)
    (package / '__init__.py').write_text('')
    (package / 'inner' / '__init__.py').write_text('')
    (package / 'top.py').write_text(
        'def load():\n    from chromagen_tf.inner import lazy\n'
    )
    (package / 'inner' / 'lazy.py').write_text(
        'from .. import top\nfrom . import other\n'
    )
    (package / 'inner' / 'other.py').write_text(
        'if TYPE_CHECKING:\n    from chromagen_tf import top\n'
    )
    graph = import_graph(tmp_path)
    assert graph['chromagen_tf.top'] == {'chromagen_tf.inner.lazy': 2}
    assert graph['chromagen_tf.inner.lazy'] == {
        'chromagen_tf.top': 1,
        'chromagen_tf.inner.other': 2,
    }
    assert graph['chromagen_tf.inner.other'] == {}
    assert find_cycles(graph) == [
        ['chromagen_tf.inner.lazy', 'chromagen_tf.top']
    ]


def test_no_import_cycle():
    cycles = find_cycles(_GRAPH)
    assert not cycles, '\n'.join(_describe(_GRAPH, c) for c in cycles)


@pytest.mark.parametrize(
    'module',
    sorted(module for module in _GRAPH if _must_not_need_training(module)),
)
def test_serving_inference_models_and_format_do_not_need_training(module):
    chain = _path_to_training(_GRAPH, module)
    assert chain is None, ' -> '.join(chain)
