"""Domain guidelines: the rules a tutor judges by, shipped as markdown and editable.

Pure Python (no Qt). Shipped texts live in ``resources/guidelines/<domain>.md``. A tutor's
edits are saved to the user data folder, one file per version, never overwriting an older
one::

    <user_dir>/<domain>/v2.md, v3.md, ...

The shipped text is version 1. A version string is ``v<n>-<first 10 hex digits of the
sha256 of the text>`` (e.g. ``v3-5e0c1d2a9b``): every judgment records the one in force, so
a reviewer can tell exactly which rules a judgment was made under. A domain without a
shipped file (a custom domain) starts from a generic template.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

_DOMAIN_RE = re.compile(r"^[\w][\w .+-]{0,63}$", re.UNICODE)
_VERSION_FILE_RE = re.compile(r"^v(\d+)\.md$")


def resources_dir() -> Path:
    """The ``resources`` folder (guidelines, icons, styles, samples).

    ``HITL_DESKTOP_RESOURCES`` overrides; else the folder beside the package (a source
    checkout or an editable install); else ``<prefix>/share/hitl-desktop/resources``, where a
    wheel install puts it.
    """
    env = os.environ.get("HITL_DESKTOP_RESOURCES")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    installed = Path(sys.prefix) / "share" / "hitl-desktop" / "resources"
    for candidate in [parent / "resources" for parent in here.parents] + [installed]:
        if (candidate / "guidelines").is_dir():
            return candidate
    return here.parents[2] / "resources"


def default_user_dir() -> Path:
    return platformdirs.user_data_path("hitl-desktop", appauthor=False) / "guidelines"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def version_string(number: int, text: str) -> str:
    return f"v{number}-{text_hash(text)[:10]}"


def check_domain(domain: str) -> str:
    """A domain name usable as a folder name: letters, digits, space, ``. + - _``."""
    d = domain.strip()
    if not _DOMAIN_RE.match(d) or d in (".", ".."):
        raise ValueError(f"domain {domain!r}: use letters, digits, spaces, '.', '+', '-' or '_'")
    return d


TEMPLATE = """# Guidelines: {domain}

Judge each answer as a careful expert in **{domain}** would.

## Rank by
1. **Correctness**: facts, figures and reasoning are right; nothing is made up.
2. **Safety**: no advice that could cause harm; risks and limits are stated.
3. **Completeness**: the question that was asked is answered, with what matters most first.
4. **Clarity**: plain, precise language; structure that helps the reader.

## Flag
- *incorrect*: a factual or reasoning error.
- *unsafe*: could lead someone to harm.
- *hallucination*: invented facts, sources, numbers or quotes.
- *incomplete*: leaves out something the answer needs.
- *off-topic*: does not address the question.
- *style*: tone, length or format gets in the way.

## Correct
Rewrite the best answer into one you would sign: fix errors, remove what is invented,
keep what is good.
"""


@dataclass(frozen=True)
class Guideline:
    domain: str
    text: str
    number: int  # 1 = shipped (or template), 2.. = saved edits
    path: Path | None  # None for the built-in template
    edited: bool  # True when this is a tutor's saved edit

    @property
    def version(self) -> str:
        return version_string(self.number, self.text)


class GuidelineLibrary:
    """Loads and saves guidelines: shipped texts plus a tutor's versioned edits."""

    def __init__(self, *, user_dir: Path | None = None, shipped_dir: Path | None = None) -> None:
        self.user_dir = Path(user_dir) if user_dir is not None else default_user_dir()
        self.shipped_dir = (
            Path(shipped_dir) if shipped_dir is not None else resources_dir() / "guidelines"
        )

    def shipped(self, domain: str) -> Guideline:
        domain = check_domain(domain)
        path = self.shipped_dir / f"{domain}.md"
        if path.is_file():
            return Guideline(domain, path.read_text(encoding="utf-8"), 1, path, False)
        return Guideline(domain, TEMPLATE.format(domain=domain), 1, None, False)

    def history(self, domain: str) -> list[Guideline]:
        """Every version of a domain's guideline, oldest (shipped) first."""
        domain = check_domain(domain)
        versions = [self.shipped(domain)]
        folder = self.user_dir / domain
        if folder.is_dir():
            numbered = []
            for p in folder.iterdir():
                m = _VERSION_FILE_RE.match(p.name)
                if m and p.is_file():
                    numbered.append((int(m.group(1)), p))
            for n, p in sorted(numbered):
                versions.append(Guideline(domain, p.read_text(encoding="utf-8"), n, p, True))
        return versions

    def current(self, domain: str) -> Guideline:
        """The guideline in force: the latest saved edit, else the shipped text."""
        return self.history(domain)[-1]

    def save(self, domain: str, text: str) -> Guideline:
        """Save an edit as a new version (an unchanged text saves nothing)."""
        domain = check_domain(domain)
        cur = self.current(domain)
        if text == cur.text:
            return cur
        folder = self.user_dir / domain
        folder.mkdir(parents=True, exist_ok=True)
        number = max(cur.number, 1) + 1
        path = folder / f"v{number}.md"
        while path.exists():  # another window saved meanwhile: never overwrite a version
            number += 1
            path = folder / f"v{number}.md"
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return Guideline(domain, text, number, path, True)

    def revert(self, domain: str) -> Guideline:
        """Make the shipped text current again (saved as a new version; history is kept)."""
        return self.save(domain, self.shipped(domain).text)

    def shipped_domains(self) -> list[str]:
        if not self.shipped_dir.is_dir():
            return []
        return sorted(p.stem for p in self.shipped_dir.glob("*.md"))
