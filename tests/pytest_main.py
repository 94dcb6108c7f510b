"""Entry point of the pytest_test rule: runs pytest on the files given as arguments."""
import os
import sys

import pytest

if __name__ == "__main__":
    args = sys.argv[1:]
    # Bazel sets TEST_TMPDIR; keep pytest's cache out of the read-only runfiles tree.
    extra = ["-p", "no:cacheprovider", "-q", "-rs"]
    if os.environ.get("XML_OUTPUT_FILE"):
        extra += ["--junitxml", os.environ["XML_OUTPUT_FILE"]]
    sys.exit(pytest.main(extra + args))
