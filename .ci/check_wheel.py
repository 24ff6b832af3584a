"""Checks that a built jaxem wheel ships the data sets, py.typed and the licence.

Usage: python .ci/check_wheel.py WHEEL_DIR  (after `pip wheel --no-deps . -w WHEEL_DIR`)
"""

import pathlib
import sys
import zipfile

REQUIRED = [
    "jaxem/py.typed",
    "jaxem/data/README.md",
    "jaxem/data/faithful.csv",
    "jaxem/data/geyser.csv",
    "jaxem/data/Nile.csv",
    "jaxem/data/discoveries.csv",
]


def main(wheel_dir):
    wheels = sorted(pathlib.Path(wheel_dir).glob("jaxem-*.whl"))
    if len(wheels) != 1:
        sys.exit(f"expected one jaxem wheel in {wheel_dir}, found {len(wheels)}")
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    missing = [name for name in REQUIRED if name not in names]
    if not any(name.endswith("licenses/LICENSE") for name in names):
        missing.append("*.dist-info/licenses/LICENSE")
    if missing:
        sys.exit(f"{wheels[0].name} lacks: {', '.join(missing)}")
    print(f"{wheels[0].name}: data sets, py.typed and LICENSE present")


if __name__ == "__main__":
    main(sys.argv[1])
