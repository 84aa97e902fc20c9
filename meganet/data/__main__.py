"""``python -m meganet.data`` (also ``meganet data``): ``fetch NAME [--folder F] [--install]`` and ``list``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def build_parser(prog="meganet data"):
    """The argument parser of ``meganet data``."""
    from .fetch import DATASETS

    names = ", ".join(DATASETS)
    parser = argparse.ArgumentParser(prog=prog, description="Put data sets into the data folder ($MEGANET_DATA, "
                                     "else $MEGANET_DATA_DIR, else ~/.cache/meganet/data) and list them.")
    sub = parser.add_subparsers(dest="command", metavar="{fetch,list}")
    sub.required = True
    f = sub.add_parser("fetch", help="fetch a data set (or say where to put a user-supplied one)")
    f.add_argument("name", choices=list(DATASETS), metavar="NAME", help=f"one of: {names}")
    f.add_argument("--folder", default=None, help="data folder (default: the data folder above)")
    f.add_argument("--install", action="store_true",
                   help="fashion-mnist: run apt-get if the Debian package dataset-fashion-mnist is not installed")
    ls = sub.add_parser("list", help="list the data sets and whether their files are present")
    ls.add_argument("--folder", default=None, help="data folder (default: the data folder above)")
    return parser


def main(argv=None, *, prog="meganet data"):
    """Run ``meganet data ...``; returns the exit status (0: the files are in place, 1: they are not, 2: error)."""
    from .fetch import DATASETS, ChecksumError, dataset_status, fetch

    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.command == "list":
        for name, src in DATASETS.items():
            dest, missing = dataset_status(name, folder=args.folder)
            state = "present" if not missing else ("missing" if len(missing) == len(src.files) else "incomplete")
            how = "user-supplied" if src.how == "user" else f"meganet data fetch {name}"
            print(f"{name:14s} {state:10s} {dest}  ({src.description}; {how})")
        return 0
    try:
        res = fetch(args.name, folder=args.folder, install=args.install)
    except (ChecksumError, ValueError, RuntimeError, OSError) as err:
        print(f"meganet data fetch {args.name}: error: {err}", file=sys.stderr)
        return 2
    print(res.message, file=sys.stdout if res.ok else sys.stderr)
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main(prog="python -m meganet.data"))
