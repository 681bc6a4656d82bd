"""Every `python -m ...` command in the docs names a real tool and real flags.

The commands are taken from the Markdown files (fenced blocks and inline
code, with `\\` continuations joined). Each tool's flags are read with `ast`
from its source and from the project modules it imports at the top level,
the way absl sees them: a flag defined by any module the tool imports is
accepted, which covers the flags adopted from `inference/model_flags.py`.
Nothing is imported, so TensorFlow is never started. absl's own flags
(`--help`, `--verbosity`, ...) come from absl itself.
"""

import ast
import dataclasses
import functools
import pathlib
import re
import shlex
from typing import Iterator, Optional

from absl import app
from absl import flags
from absl import logging  # noqa: F401 (defines --verbosity and the log flags)
import pytest

from tests import conftest

REPO_ROOT = conftest.REPO_ROOT
DOCS = sorted(
    [
        REPO_ROOT / 'README.md',
        REPO_ROOT / 'MODEL_CARD.md',
        REPO_ROOT / 'BENCHMARKS.md',
        REPO_ROOT / 'BUILD_NOTES.md',
        *(REPO_ROOT / 'docs').glob('*.md'),
    ]
)
# Modules that are not the project's; their arguments are not checked.
_EXTERNAL_MODULES = {'pip', 'pytest', 'venv', 'http.server'}
_PROJECT_PACKAGES = ('chromagen_tf', 'data_prep', 'bench')
_COMMAND = re.compile(r'(?:^|[\s/`$(])python3?(?:\.\d+)?\s+-m\s+(.*)')
_SHELL_STOPS = {'|', '||', '&&', ';', '>', '>>', '2>', '2>&1', '&'}
_BOOLEAN_DEFINES = {'DEFINE_bool', 'DEFINE_boolean'}


@dataclasses.dataclass(frozen=True)
class Command:
    """One `python -m` command found in a doc."""

    path: pathlib.Path
    line: int
    module: str
    arguments: tuple[str, ...]

    def where(self) -> str:
        return f'{self.path.relative_to(REPO_ROOT)}:{self.line}'


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    boolean: bool
    enum_values: Optional[tuple[str, ...]]


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines with `\\` continuations joined, numbered by their first line."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index]
        while line.rstrip().endswith('\\') and index + 1 < len(lines):
            index += 1
            line = line.rstrip()[:-1] + ' ' + lines[index].strip()
        yield number, line
        index += 1


def _command_from(path: pathlib.Path, line: int, text: str):
    match = _COMMAND.search(text)
    if not match:
        return None
    tokens = shlex.split(match.group(1), comments=True)
    arguments = []
    for token in tokens[1:]:
        if token in _SHELL_STOPS:
            break
        arguments.append(token)
    return Command(path, line, tokens[0], tuple(arguments))


def _code_spans(text: str) -> Iterator[tuple[int, str]]:
    """Inline code spans of prose, which may run over a line break."""
    for match in re.finditer(r'`([^`]+)`', text):
        yield text[: match.start()].count('\n'), match.group(1)


def _commands_in(path: pathlib.Path) -> Iterator[Command]:
    """Commands in fenced blocks (a line each) and in inline code spans."""
    lines = path.read_text(encoding='utf-8').splitlines()
    in_fence = False
    fence: list[str] = []
    paragraph: list[str] = []
    paragraph_start = fence_start = 0

    def flush_paragraph():
        text = '\n'.join(paragraph)
        for offset, span in _code_spans(text):
            command = _command_from(
                path, paragraph_start + offset, span.replace('\n', ' ')
            )
            if command:
                yield command
        paragraph.clear()

    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith('```'):
            if in_fence:
                block = '\n'.join(fence)
                for offset, logical in _logical_lines(block):
                    command = _command_from(path, fence_start + offset, logical)
                    if command:
                        yield command
                fence.clear()
            else:
                yield from flush_paragraph()
                fence_start = number
            in_fence = not in_fence
        elif in_fence:
            fence.append(line)
        elif line.strip():
            if not paragraph:
                paragraph_start = number
            paragraph.append(line)
        else:
            yield from flush_paragraph()
    yield from flush_paragraph()


def _module_file(module: str) -> Optional[pathlib.Path]:
    base = REPO_ROOT.joinpath(*module.split('.'))
    for candidate in (base.with_suffix('.py'), base / '__init__.py'):
        if candidate.is_file():
            return candidate
    return None


def _top_level_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run at import: not inside functions or classes."""
    for statement in body:
        if isinstance(
            statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        ):
            continue
        yield statement
        for field in ('body', 'orelse', 'finalbody', 'handlers'):
            yield from _top_level_statements(getattr(statement, field, []))


def _imported_modules(module: str, tree: ast.Module) -> Iterator[str]:
    """Project modules imported at import time, packages included."""
    for statement in _top_level_statements(tree.body):
        names = []
        if isinstance(statement, ast.Import):
            names = [alias.name for alias in statement.names]
        elif isinstance(statement, ast.ImportFrom) and statement.module:
            base = statement.module
            if statement.level:
                package = module.rsplit('.', statement.level)[0]
                base = f'{package}.{base}'
            names = [base]
            names += [f'{base}.{alias.name}' for alias in statement.names]
        for name in names:
            if name.split('.')[0] not in _PROJECT_PACKAGES:
                continue
            parts = name.split('.')
            # Importing a.b.c runs a/__init__.py and a/b/__init__.py too.
            for end in range(1, len(parts) + 1):
                if _module_file('.'.join(parts[:end])):
                    yield '.'.join(parts[:end])


@functools.cache
def _parse(module: str) -> ast.Module:
    return ast.parse(_module_file(module).read_text(encoding='utf-8'))


def _aliases(module: str) -> dict[str, tuple[str, Optional[str]]]:
    """Local name -> (module, name in it or None for the module itself)."""
    found = {}
    for statement in _top_level_statements(_parse(module).body):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                if alias.asname:
                    found[alias.asname] = (alias.name, None)
        elif isinstance(statement, ast.ImportFrom) and statement.module:
            for alias in statement.names:
                full = f'{statement.module}.{alias.name}'
                found[alias.asname or alias.name] = (
                    (full, None)
                    if _module_file(full)
                    else (statement.module, alias.name)
                )
    return found


def _constant_strings(
    module: str, node: Optional[ast.AST], depth: int = 0
) -> Optional[tuple[str, ...]]:
    """The strings an enum's values evaluate to, if plain constants.

    Follows names to their top-level assignment, in this module or one it
    imports, and `list()`, `tuple()`, `sorted()` and dict keys. None when
    the values are computed some other way (then they are not checked).
    """
    if node is None or depth > 5 or _module_file(module) is None:
        return None
    if isinstance(node, (ast.List, ast.Tuple)):
        if all(
            isinstance(item, ast.Constant) and isinstance(item.value, str)
            for item in node.elts
        ):
            return tuple(item.value for item in node.elts)
        return None
    if isinstance(node, ast.Dict):
        return _constant_strings(module, ast.Tuple(node.keys), depth)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ('list', 'tuple', 'sorted')
        and len(node.args) == 1
    ):
        return _constant_strings(module, node.args[0], depth + 1)
    if isinstance(node, ast.Name):
        return _name_strings(module, node.id, depth)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        target = _aliases(module).get(node.value.id)
        if target and target[1] is None:
            return _name_strings(target[0], node.attr, depth)
    return None


def _name_strings(
    module: str, name: str, depth: int
) -> Optional[tuple[str, ...]]:
    if _module_file(module) is None:
        return None
    for statement in _top_level_statements(_parse(module).body):
        if isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name
            for target in statement.targets
        ):
            return _constant_strings(module, statement.value, depth + 1)
    target = _aliases(module).get(name)
    if target and target[1] is not None:
        return _name_strings(target[0], target[1], depth + 1)
    return None


def _defined_flags(module: str) -> Iterator[tuple[str, Flag]]:
    """(name or short name, Flag) for each flags.DEFINE_* call."""
    for node in ast.walk(_parse(module)):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        define = getattr(function, 'attr', getattr(function, 'id', ''))
        if not define.startswith('DEFINE_'):
            continue
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        name_node = node.args[0] if node.args else keywords.get('name')
        if not isinstance(name_node, ast.Constant):
            continue
        enum_node = node.args[2] if len(node.args) > 2 else None
        enum_node = keywords.get('enum_values', enum_node)
        flag = Flag(
            name_node.value,
            define in _BOOLEAN_DEFINES,
            _constant_strings(module, enum_node) if 'enum' in define else None,
        )
        yield flag.name, flag
        short = keywords.get('short_name')
        if isinstance(short, ast.Constant):
            yield short.value, flag


@functools.cache
def _flags_of(module: str) -> dict[str, Flag]:
    """The flags absl accepts once `module` and its imports are loaded."""
    found: dict[str, Flag] = {}
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        found.update(_defined_flags(name))
        pending.extend(_imported_modules(name, _parse(name)))
    return found


@functools.cache
def _absl_flags() -> dict[str, Flag]:
    """absl's own flags: help, logging, --flagfile and --undefok."""
    app.define_help_flags()
    found = {
        'flagfile': Flag('flagfile', False, None),
        'undefok': Flag('undefok', False, None),
    }
    for owner in ('absl.app', 'absl.logging'):
        for flag in flags.FLAGS.get_flags_for_module(owner):
            entry = Flag(flag.name, flag.boolean, None)
            found[flag.name] = entry
            if flag.short_name:
                found[flag.short_name] = entry
    return found


def _problems(command: Command) -> Iterator[str]:
    if command.module in _EXTERNAL_MODULES:
        return
    if command.module.split('.')[0] not in _PROJECT_PACKAGES or not (
        _module_file(command.module)
    ):
        yield f'unknown module {command.module}'
        return
    known = {**_absl_flags(), **_flags_of(command.module)}
    for argument in command.arguments:
        if argument == '--':
            break
        if not argument.startswith('-') or argument == '-':
            continue
        name, has_value, value = argument.lstrip('-').partition('=')
        flag = known.get(name)
        if flag is None and name.startswith('no'):
            negated = known.get(name[2:])
            if negated is not None and negated.boolean and not has_value:
                continue
            if negated is not None:
                yield f'--{name}: --{name[2:]} is not a boolean'
                continue
        if flag is None:
            yield f'unknown flag --{name}'
        elif has_value and flag.enum_values and value not in flag.enum_values:
            yield f'--{name}={value}: not one of {sorted(flag.enum_values)}'


_COMMANDS = [command for path in DOCS for command in _commands_in(path)]


def test_the_docs_hold_commands():
    modules = {command.module for command in _COMMANDS}
    assert 'chromagen_tf.colorize' in modules, modules


@pytest.mark.parametrize(
    'path', DOCS, ids=[str(path.relative_to(REPO_ROOT)) for path in DOCS]
)
def test_every_command_names_a_tool_and_its_flags(path):
    problems = [
        f'{command.where()}: python -m {command.module}: {problem}'
        for command in _COMMANDS
        if command.path == path
        for problem in _problems(command)
    ]
    assert not problems, '\n'.join(problems)


def test_the_check_finds_wrong_commands():
    """Negative control: each kind of mistake is reported."""
    where = REPO_ROOT / 'README.md'

    def problems(*words: str) -> list[str]:
        return list(_problems(Command(where, 1, words[0], words[1:])))

    assert (
        problems(
            'chromagen_tf.colorize',
            'a.jpg',
            '--output_dir=out',
            '--model=m',
            '--nooverwrite',
            '--verbosity=0',
        )
        == []
    )
    assert problems('chromagen_tf.colorise') == [
        'unknown module chromagen_tf.colorise'
    ]
    assert problems('chromagen_tf.colorize', '--output_dirr=x') == [
        'unknown flag --output_dirr'
    ]
    assert problems('chromagen_tf.evaluate', '--nomodel') == [
        '--nomodel: --model is not a boolean'
    ]
    assert problems('chromagen_tf.bundled.recipe', '--gan_weight=1') == [
        'unknown flag --gan_weight'
    ]
    assert problems('chromagen_tf.bundled.recipe', '--config=nope') == [
        "--config=nope: not one of "
        "['bins', 'hint_branch', 'hints', 'regression']"
    ]
    assert problems('chromagen_tf.train', '--stage=gan') == []
    assert problems('chromagen_tf.train', '--stage=nope') == [
        "--stage=nope: not one of ['gan', 'pretrain']"
    ]
