"""The README's role table is true: every page it lists opens for the roles it names and is
refused to the others."""

from __future__ import annotations

import re

import pytest

from tests.factories import make_asset, make_asset_type, make_site
from web.roles import ROLE_LABELS

README = __import__("pathlib").Path(__file__).resolve().parents[2] / "README.md"
WORDS = {"facility managers": "facility_manager", "planners": "planner", "admins": "admin"}


def role_table() -> list[tuple[str, set[str]]]:
    text = README.read_text()
    table = text[text.index("| page | who | what |"):]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        page, who = (cell.strip() for cell in line.strip("|").split("|")[:2])
        path = re.match(r"`([^`]+)`", page).group(1)
        rows.append((path, {WORDS[w.strip()] for w in who.split(",")}))
    return rows


@pytest.fixture
def people(manager, planner, admin_user):
    admin_user.is_staff = admin_user.is_superuser = True  # as load_demo makes its admins (Django's admin needs staff)
    admin_user.save()
    site = make_site(members=[manager, planner])
    asset = make_asset(site, make_asset_type(), None)
    return {"facility_manager": manager, "planner": planner, "admin": admin_user}, asset


def test_it_lists_every_role_in_words():
    assert set(WORDS.values()) == set(ROLE_LABELS)


def test_the_readme_role_table_matches_the_code(client, people):
    users, asset = people
    rows = role_table()
    assert len(rows) >= 10
    for path, allowed in rows:
        url = path.replace("<id>", str(asset.id))
        for role, user in users.items():
            client.force_login(user)
            status = client.get(url).status_code
            if role in allowed:
                assert status == 200, f"{url} should open for {role} (README), got {status}"
            else:
                assert status in (302, 403), f"{url} should be refused to {role} (README), got {status}"
