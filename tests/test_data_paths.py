"""Every file a test reads is inside the repository (a clone runs its own tests).

Two checks: the data folders ``tests.shared_data`` exports are inside the repository and
exist, and no test source refers to the old fixture folder beside the checkout (``shared``
next to the repository root) or to an absolute path of a developer machine.
"""
import glob
import os.path as osp
import re

import pytest

from tests import shared_data

REPO_ROOT = osp.realpath(osp.dirname(osp.dirname(osp.abspath(__file__))))

# Written so that this file does not match its own patterns.
_FORBIDDEN = [
    (re.compile(r'\.\.[/\\]+' + 'shared'),
     'a relative path up to the folder beside the repository'),
    (re.compile(r'''['"]\.\.['"][\s,/)]*['"]''' + 'shared'),
     'a path join up to the folder beside the repository'),
    (re.compile(r'''(parents?\[\s*[3-9]\s*\]|\.parent\.parent\.parent)[^\n]*['"]'''
                + 'shared'), 'a path climbing out of the repository'),
    (re.compile('/' + r'work/+(main|shared)\b'), 'an absolute path of a developer machine'),
]


def _inside_repo(path: str) -> bool:
    real = osp.realpath(path)
    return osp.commonpath([real, REPO_ROOT]) == REPO_ROOT


def test_exported_data_dirs_are_inside_the_repository_and_exist():
    assert osp.realpath(shared_data.REPO_ROOT) == REPO_ROOT
    dirs = {name: getattr(shared_data, name) for name in dir(shared_data)
            if name.endswith('_DIR')}
    assert {'TEST_DATA_DIR', 'REAL_SAMPLE_DIR', 'BEVFORMER_REFERENCE_DIR'} <= set(dirs)
    assert 'SHARED_DIR' not in dirs
    for name, path in dirs.items():
        assert _inside_repo(path), f'tests.shared_data.{name} = {path} is outside {REPO_ROOT}'
        assert osp.isdir(path), f'tests.shared_data.{name} = {path} does not exist'
    # the files the tests read are there (not Git LFS pointers: real sizes)
    sample = osp.join(shared_data.REAL_SAMPLE_DIR, 'LIDAR_TOP.pcd.bin')
    assert osp.getsize(sample) == 34688 * 5 * 4
    for name in ('checkpoint.pth', 'inputs.pth', 'outputs.pth', 'config.py',
                 'FIXTURE_README.md'):
        path = osp.join(shared_data.BEVFORMER_REFERENCE_DIR, name)
        assert osp.getsize(path) > 1000, path


def _test_sources():
    return sorted(glob.glob(osp.join(REPO_ROOT, 'tests', '**', '*.py'), recursive=True))


def test_no_test_source_reaches_outside_the_repository():
    sources = _test_sources()
    assert len(sources) > 20 and osp.abspath(__file__) in sources
    problems = []
    for path in sources:
        with open(path, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                for pattern, what in _FORBIDDEN:
                    if pattern.search(line):
                        problems.append(f'{osp.relpath(path, REPO_ROOT)}:{lineno}: {what}: '
                                        f'{line.strip()}')
    assert not problems, 'test data must live under tests/data:\n' + '\n'.join(problems)


@pytest.mark.parametrize('line', [
    # SHRD stands for the folder name, so that this file does not match its own patterns
    "SAMPLE_DIR = Path(__file__).resolve().parents[3] / 'SHRD' / 'data'",
    "SAMPLE_DIR = Path(__file__).parent.parent.parent.parent / 'SHRD'",
    "SHARED = osp.join(REPO_ROOT, '..', 'SHRD')",
    "SHARED = Path(REPO_ROOT) / '..' / 'SHRD'",
    "p = '../SHRD/data/nuscenes_sample'",
    "p = '/work/SHRD/data'",
    "p = '/" + "work/main/tests/data'",
])
def test_the_scan_catches_outside_paths(line):
    line = line.replace('SHRD', 'shared')
    assert any(p.search(line) for p, _ in _FORBIDDEN), line


def test_the_scan_lets_repository_paths_through():
    for line in ("REAL_SAMPLE_DIR = osp.join(TEST_DATA_DIR, 'nuscenes_sample')",
                 "# both heads and the shared encoder receive gradients",
                 "n_shared = sum(p.numel() for p in head.parameters())"):
        assert not any(p.search(line) for p, _ in _FORBIDDEN), line
