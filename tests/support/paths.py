"""Where the checkout is: the folder holding the packages, tests/, bench/ and deploy/."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
