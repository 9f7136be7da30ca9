"""Offline stand-in for get-pip.py, used by scripts/sanity.sh.

ansible-test bootstraps pip in its sanity virtual environments by downloading get-pip.py; this script takes its
place in ansible-test's cache: it installs pip from the interpreter's bundled wheel (ensurepip), then installs
what ansible-test asked for with that pip.
"""

import subprocess
import sys

IGNORED = ("--no-setuptools", "--no-wheel")  # get-pip.py options that `pip install` does not have


def main():
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + [a for a in sys.argv[1:] if a not in IGNORED])


if __name__ == "__main__":
    main()
