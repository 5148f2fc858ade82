"""What porter reads from a package's build files: live settings only, with where they are."""

from __future__ import annotations

from porter.analyze.build_config import read_build_config

SETUP = b'''
from setuptools import Extension, setup

# define_macros=[("Py_LIMITED_API", "0x03060000")]   (an old setting, commented out)
MACROS = [("WITH_FAST_PATH", "1"), ("Py_LIMITED_API", "0x030C0000")]
setup(
    name="pkg",
    headers=["include/pkg/api.h"],
    ext_modules=[Extension("pkg._speed", ["src/speed.c"], define_macros=MACROS,
                           include_dirs=["include", "third_party/lib"],
                           extra_compile_args=["-DNDEBUG", "-Ivendor"], py_limited_api=True)],
)
'''


def test_setup_py_settings_come_from_literals_and_module_level_names():
    config = read_build_config([("pkg/setup.py", SETUP)])
    assert config.limited_api is not None and config.limited_api.value == "0x030C0000"
    assert config.limited_api.file == "pkg/setup.py" and config.limited_api_version == 0x030C0000
    assert dict(config.defines) == {"WITH_FAST_PATH": "1", "NDEBUG": ""}
    assert config.include_dirs == ("pkg/include", "pkg/third_party/lib", "pkg/vendor")
    assert config.installed_headers == ("pkg/include/pkg/api.h",)


def test_extension_names_and_their_sources_are_read_from_literals():
    config = read_build_config([("pkg/setup.py", SETUP + b"""
class Extension(Extension):
    pass
EXTS = lambda v: [Extension("_fast", sources=["fast.c"], version=v)]
""")])
    assert [(e.name, e.sources, e.line) for e in config.extensions] == [
        ("pkg._speed", ("pkg/src/speed.c",), 9), ("_fast", ("pkg/fast.c",), 16)]
    assert config.extension_of("pkg/src/./speed.c").name == "pkg._speed"
    assert config.extension_of("pkg/other.c") is None


def test_a_commented_out_setting_says_nothing():
    config = read_build_config([("setup.py", b'# Extension("m", ["m.c"], define_macros=[("Py_LIMITED_API", '
                                             b'"0x03060000")])\nfrom setuptools import setup\nsetup()\n')])
    assert config.limited_api is None and config.defines == ()


def test_pyproject_ext_modules_and_an_unreadable_file():
    doc = b'''[tool.setuptools]
ext-modules = [{name = "m", sources = ["m.c"], define-macros = [["Py_LIMITED_API", "0x030D0000"]]}]
'''
    config = read_build_config([("pyproject.toml", doc), ("setup.py", b"def (:\n")])
    assert config.limited_api_version == 0x030D0000 and config.files == ("pyproject.toml",)


FLOW = b'''
import platform, sys
from setuptools import Extension, setup
try:
    import __pypy__
except ImportError:
    __pypy__ = None

macros = [("STEP", "2")]
if __pypy__ is not None:
    macros.append(("_PYPY", "1"))
elif sys.version_info.major == 2:
    macros.append(("_PYTHON2", "1"))
elif sys.version_info.major == 3:
    macros.append(("_PYTHON3", "1"))
if sys.version_info >= (3, 8):
    macros += [("NEW_API", None)]
if sys.version_info >= (3, 13):
    macros.append(("ONLY_SOME", "1"))   # 3.11 and 3.12 do not: not every target defines it
if platform.python_implementation() == "PyPy":
    macros.append(("PYPY_PATH", "1"))
if os.environ.get("LIMITED", "1") == "1":
    macros.append(("Py_LIMITED_API", "0x030a0000"))   # may be declared: the port must fit it
kwargs = {"define_macros": macros}
setup(ext_modules=[Extension("m", ["m.c"], **kwargs)])
'''


def test_setup_py_macros_follow_the_branches_every_targeted_cpython_takes():
    config = read_build_config([("setup.py", FLOW)])
    assert dict(config.defines) == {"STEP": "2", "_PYTHON3": "1", "NEW_API": ""}
    assert config.limited_api is not None and config.limited_api_version == 0x030A0000


PLATFORM = b'''
import os, sys
from setuptools import Extension, setup

(u_sysname, u_nodename, u_release, u_version, u_machine) = os.uname()
macros = []
if u_sysname == "Linux":
    macros.append(("HAVE_LINUX", None))
elif u_sysname == "FreeBSD":
    macros.append(("HAVE_FREEBSD", None))
if sys.platform.startswith("linux") and os.name == "posix":
    macros.append(("POSIX_LINUX", "1"))
if sys.platform in ("win32", "cygwin"):
    macros.append(("WINDOWS", "1"))
setup(ext_modules=[Extension("m", ["m.c"], define_macros=macros)])
'''


def test_setup_py_platform_tests_are_read_for_linux():
    assert dict(read_build_config([("setup.py", PLATFORM)]).defines) == {"HAVE_LINUX": "", "POSIX_LINUX": "1"}


ENVIRONMENT = b'''
import os
from setuptools import Extension, setup

if os.environ.get("DEBUG_PKG") == "1":
    define_macros = []
    undef_macros = ["NDEBUG"]
else:
    define_macros = [("NDEBUG", "1")]
if "PKG_EXTRA" in os.environ:
    define_macros.append(("EXTRA", "1"))
if os.getenv("PKG_FAST", "yes") == "yes":
    define_macros.append(("FAST", "1"))
setup(ext_modules=[Extension("m", ["m.c"], define_macros=define_macros)])
'''


def test_setup_py_environment_variables_are_read_as_unset():
    """The default build: what a developer switches on with an environment variable is off."""
    assert dict(read_build_config([("setup.py", ENVIRONMENT)]).defines) == {"NDEBUG": "1", "FAST": "1"}
