"""Search through the real stack: items encoded by the encoder worker (MiniLM, EfficientNet-Lite0) into
Milvus, asked of the profile worker over HTTP (its in-process index copy), with profiles built from
events on the real broker."""

from __future__ import annotations

import uuid

import httpx
import pytest

from fusionrec.schemas import Item, MediaKind, MediaRef, QueryError
from fusionrec.streams.client import Client
from fusionrec.testing.media import crop, other_photo, photo
from fusionrec.testing.stack import run_cli

from .test_multimodal import small_jpeg

pytestmark = pytest.mark.integration

TEXTS = {
    "trail1": "Trail running shoes with a grippy sole for muddy mountain paths",
    "trail2": "Lightweight trail running shoes for rocky mountain trails",
    "dress1": "Polished leather oxford dress shoes for formal evenings",
    "dress2": "Classic black leather dress shoes for weddings and the office",
    "jazz": "A jazz piano record from a smoky night club session",
    "violin": "Baroque violin concertos played on period instruments",
}


@pytest.fixture(scope="module")
def shop(stack, media_root):
    """The module's items, in a category of their own so that searches can be kept to them."""
    from fusionrec.testing.stack import Driver

    tag = uuid.uuid4().hex[:6]
    folder = media_root / f"search-{tag}"
    folder.mkdir()
    (folder / "portrait.jpg").write_bytes(small_jpeg(photo()))
    (folder / "present.jpg").write_bytes(small_jpeg(other_photo()))
    category = f"search-{tag}"
    items = [Item(id=f"{tag}-{name}", title=text, category=category) for name, text in TEXTS.items()]
    items += [
        Item(id=f"{tag}-portrait", title="A portrait", category=category,
             media={MediaKind.IMAGE: MediaRef(uri=(folder / "portrait.jpg").as_uri())}),
        Item(id=f"{tag}-present", title="A gift", category=category,
             media={MediaKind.IMAGE: MediaRef(uri=(folder / "present.jpg").as_uri())}),
    ]
    driver = Driver(stack)
    driver.publish_items(items)
    client = Client(stack.settings)
    # Searchable once the worker's index copy has every item.
    driver.wait_until(lambda: len(client.search("shoes", k=20, categories=[category]).items) == len(items),
                      what="the items in the worker's index copy")
    yield tag, category, driver, client, folder
    client.close()
    driver.close()


def ids(results) -> list[str]:
    return [i.item_id.split("-", 1)[1] for i in results.items]


def test_words_find_the_matching_item(shop):
    tag, category, _, client, _ = shop
    found = client.search("shoes for running in the mountains", k=3, categories=[category])
    assert ids(found)[0] in ("trail1", "trail2") and set(ids(found)[:2]) == {"trail1", "trail2"}
    assert found.items[0].reason == "matches \u2018shoes for running in the mountains\u2019"
    assert ids(client.search("orchestral classical music", k=1, categories=[category])) == ["violin"]


def test_a_picture_finds_its_item(shop):
    tag, category, _, client, folder = shop
    part = crop(photo(), (0.1, 0.05, 0.9, 0.85))  # a different photo of the same picture
    assert ids(client.search(image=small_jpeg(part), k=1, categories=[category])) == ["portrait"]
    # By URI, fetched under the worker's media policy.
    found = client.search(image=(folder / "present.jpg").as_uri(), k=1, categories=[category])
    assert ids(found) == ["present"] and found.items[0].reason == "looks like your picture"


def test_more_like_this_leaves_the_item_out(shop):
    tag, category, _, client, _ = shop
    found = client.search(like=f"{tag}-dress1", k=3, categories=[category])
    assert "dress1" not in ids(found) and ids(found)[0] == "dress2"


def test_personalisation_reorders_for_users_with_different_histories(shop):
    tag, category, driver, client, _ = shop
    runner, formal = f"runner-{tag}", f"formal-{tag}"
    # Someone who bought every pair first, so that popularity and co-occurrence do not tell them apart.
    shoes = [(f"crowd-{tag}", item) for item in ("trail1", "trail2", "dress1", "dress2")]
    for user, item in [*shoes, (runner, "trail1"), (formal, "dress1")]:
        driver.recommendation_for(driver.interact(user, f"{tag}-{item}"))
    ask = lambda user, **kw: ids(client.search("shoes", user=user, k=4, categories=[category], **kw))  # noqa: E731
    # What each has not bought yet comes first in that user's style.
    assert ask(runner, exclude_seen=True)[0] == "trail2" and ask(formal, exclude_seen=True)[0] == "dress2"
    assert ask(runner, personalization=0.0) == ask(formal, personalization=0.0)
    found = client.search("shoes", user=runner, k=1, categories=[category])
    assert found.personalization > 0 and found.items[0].reason.startswith("matches \u2018shoes\u2019, ")


def test_a_search_event_moves_the_next_list_toward_the_query(shop):
    tag, category, driver, client, _ = shop
    user = f"listener-{tag}"
    driver.recommendation_for(driver.interact(user, f"{tag}-jazz"))
    before = driver.recommendation_for(driver.interact(user, f"{tag}-violin"))
    event = client.record_search(user, "trail running shoes for the mountains")
    after = driver.recommendation_for(event.event_id)
    trail = {f"{tag}-trail1", f"{tag}-trail2"}
    place = lambda rec: min((n for n, i in enumerate(rec.items) if i.item_id in trail), default=99)  # noqa: E731
    assert place(after) < place(before)
    assert any("matches your search" in i.reason for i in after.items)
    assert driver.profile(user)["n_events"] == 3


@pytest.mark.parametrize("params, status", [
    ({}, 400),
    ({"q": "   "}, 400),
    ({"q": "x" * 1001}, 400),
    ({"q": "shoes", "k": "0"}, 400),
    ({"q": "shoes", "k": "ten"}, 400),
    ({"like": "no-such-item"}, 404),
    ({"image": "file:///etc/hostname"}, 403),
    ({"image": "http://127.0.0.1:1/x.jpg"}, 403),
])
def test_bad_queries_get_a_clear_4xx(stack, shop, params, status):
    resp = httpx.get(f"{stack.settings.worker_url}/search", params=params, timeout=30)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]


def test_an_undecodable_upload_is_refused(shop):
    _, _, _, client, _ = shop
    with pytest.raises(QueryError) as caught:
        client.search(image=b"this is not a picture")
    assert caught.value.status == 400 and "image" in caught.value.reason


def test_the_search_command(stack, shop):
    tag, category, _, _, folder = shop
    done = run_cli(stack, "search", "dress shoes for a wedding", "--category", category, "--k", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert f"{tag}-dress" in done.stdout
    done = run_cli(stack, "search", "--image", str(folder / "portrait.jpg"), "--category", category, "--k", "1")
    assert done.returncode == 0 and f"{tag}-portrait" in done.stdout, done.stderr
