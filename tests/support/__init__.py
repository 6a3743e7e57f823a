"""Fixtures and helpers the tests import (``from support.common import REPO``): tests/ is on pytest's pythonpath."""
