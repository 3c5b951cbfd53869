"""The generator writes the UCSD Goodreads layout with the structure the pipeline needs."""
import gzip
import json

import numpy as np
import pandas as pd
import pytest

from sample_goodreads import generate, readers
from sample_goodreads.books import Catalogue
from sample_goodreads import names as sample_names

from tests.reference_formats import UCSD_SAMPLES as FORMATS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("goodreads")
    generate.run(["--output", str(out), "--ratings", "60000", "--books", "2000",
                  "--users", "1500", "--seed", "3", "--dedup_json"])
    return out


def _json_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _sample_record(name):
    return json.loads((FORMATS / name).read_text())


def test_files_are_laid_out_like_ucsd(data_dir):
    names = sorted(p.name for p in data_dir.iterdir())
    assert names == sorted([
        "goodreads_interactions.csv", "user_id_map.csv", "book_id_map.csv",
        "goodreads_books.json.gz", "goodreads_book_authors.json.gz",
        "goodreads_book_genres_initial.json.gz", "goodreads_interactions_dedup.json.gz",
        generate.TOPICS_FILE])
    header = (data_dir / "goodreads_interactions.csv").read_text().splitlines()[0]
    real_header = (FORMATS / "goodreads_interactions.csv.head5").read_text().splitlines()[0]
    assert header == real_header
    assert (data_dir / "user_id_map.csv").read_text().splitlines()[0] == "user_id_csv,user_id"
    assert (data_dir / "book_id_map.csv").read_text().splitlines()[0] == "book_id_csv,book_id"


def test_book_topics_name_every_book_and_sit_inside_its_genre(data_dir):
    topics = pd.read_csv(data_dir / generate.TOPICS_FILE, dtype={"book_id": str})
    books = pd.read_csv(data_dir / "book_id_map.csv", dtype={"book_id": str})
    assert list(topics.columns) == ["book_id", "topic"]
    assert sorted(topics.book_id) == sorted(books.book_id)
    topic_of = dict(zip(topics.book_id, topics.topic))
    assert len(set(topic_of.values())) > len(sample_names.GENRES)   # finer than genres
    for record in _json_lines(data_dir / "goodreads_book_genres_initial.json.gz"):
        planted = max(record["genres"], key=record["genres"].get)
        assert topic_of[record["book_id"]] // readers.TOPICS_PER_GENRE == \
            sample_names.GENRES.index(planted)


@pytest.mark.parametrize("generated, sample", [
    ("goodreads_books.json.gz", "goodreads_books.sample.json"),
    ("goodreads_book_authors.json.gz", "goodreads_book_authors.sample.json"),
    ("goodreads_interactions_dedup.json.gz", "goodreads_interactions_dedup.sample.json"),
])
def test_json_records_have_the_real_fields_and_types(data_dir, generated, sample):
    real = _sample_record(sample)
    records = _json_lines(data_dir / generated)
    assert records
    for record in records[:200]:
        assert list(record) == list(real), "same field names in the same order"
        for key, value in real.items():
            assert type(record[key]) is type(value), key
    if generated == "goodreads_books.json.gz":
        for record in records[:200]:
            assert all(set(a) == {"author_id", "role"} for a in record["authors"])
            assert all(set(s) == {"count", "name"} for s in record["popular_shelves"])
            int(record["ratings_count"]), float(record["average_rating"]), int(record["work_id"])


def test_shelves_name_the_genre_and_the_planted_topic_with_noise(data_dir):
    topics = pd.read_csv(data_dir / generate.TOPICS_FILE, dtype={"book_id": str})
    topic_of = dict(zip(topics.book_id, topics.topic))
    books = _json_lines(data_dir / "goodreads_books.json.gz")
    own_topic_shelves = on_genre_shelf = outranked = 0
    for record in books:
        shelves = record["popular_shelves"]
        names = [s["name"] for s in shelves]
        counts = [int(s["count"]) for s in shelves]
        assert 5 <= len(names) <= 25 and len(set(names)) == len(names)
        assert counts == sorted(counts, reverse=True) and names[0] == "to-read"
        assert set(sample_names.GENERIC_SHELVES) <= set(names)
        topic = topic_of[record["book_id"]]
        genre = topic // readers.TOPICS_PER_GENRE
        on_genre_shelf += sample_names.GENRE_SHELVES[genre][0] in names
        own = [c for n, c in zip(names, counts) if n in sample_names.TOPIC_SHELVES[topic]]
        own_topic_shelves += len(own)
        # a shelf of another topic now and then counts as much as the book's own
        other = [c for n, c in zip(names, counts) if n not in sample_names.TOPIC_SHELVES[topic]
                 and any(n in t for t in sample_names.TOPIC_SHELVES)]
        outranked += bool(own and other and max(other) > min(own))
    # Noisy, as readers' shelves are, but the planted genre and topic still lead.
    assert 0.75 * len(books) < on_genre_shelf < 0.95 * len(books)
    assert own_topic_shelves > 1.9 * len(books)   # 2.2 expected: 0.9 + 0.8 + 0.5
    assert 0.02 * len(books) < outranked < 0.3 * len(books)


def test_interactions_are_consistent_and_duplicate_free(data_dir):
    df = pd.read_csv(data_dir / "goodreads_interactions.csv")
    users = pd.read_csv(data_dir / "user_id_map.csv")
    books = pd.read_csv(data_dir / "book_id_map.csv", dtype={"book_id": str})
    assert len(df) == 60000
    assert not df.duplicated(["user_id", "book_id"]).any()
    assert df.rating.between(0, 5).all() and set(df.is_read) <= {0, 1}
    assert ((df.rating > 0) <= (df.is_read == 1)).all(), "a rated book is read"
    assert 0.3 < (df.rating == 0).mean() < 0.7, "about half the rows are unrated"
    # id maps are complete, dense and one-to-one
    assert list(users.user_id_csv) == list(range(1500)) and users.user_id.is_unique
    assert users.user_id.str.fullmatch(r"[0-9a-f]{32}").all()
    assert list(books.book_id_csv) == list(range(2000)) and books.book_id.is_unique
    assert df.user_id.max() < 1500 and df.book_id.max() < 2000
    # grouped by user like the real file
    assert (np.diff(df.user_id.to_numpy()) >= 0).all()
    # catalogue covers every book and its ratings_count matches the rated rows
    catalog = pd.DataFrame(_json_lines(data_dir / "goodreads_books.json.gz"))
    assert set(catalog.book_id) == set(books.book_id)
    rated = df[df.rating > 0].book_id.map(books.set_index("book_id_csv").book_id).value_counts()
    counts = catalog.set_index("book_id").ratings_count.astype(int)
    assert (counts.reindex(rated.index) == rated).all()


def test_dedup_json_matches_the_csv(data_dir):
    df = pd.read_csv(data_dir / "goodreads_interactions.csv")
    users = pd.read_csv(data_dir / "user_id_map.csv").user_id.to_numpy()
    books = pd.read_csv(data_dir / "book_id_map.csv", dtype={"book_id": str}).book_id.to_numpy()
    from_csv = set(zip(users[df.user_id], books[df.book_id], df.rating))
    dedup = _json_lines(data_dir / "goodreads_interactions_dedup.json.gz")
    assert {(r["user_id"], r["book_id"], r["rating"]) for r in dedup} == from_csv


def test_popularity_is_heavy_tailed_and_tastes_are_planted(data_dir):
    df = pd.read_csv(data_dir / "goodreads_interactions.csv")
    counts = df[df.rating > 0].book_id.value_counts().to_numpy()
    top = max(1, len(counts) // 100)
    # Real dense Goodreads readers (goodbooks-dense) give their top 1% of books 8% of reads, the
    # generator ~10%; uniform reading gives ~1%.
    assert counts[:top].sum() / counts.sum() > 0.08, "top 1% of books hold a large share"
    activity = df.user_id.value_counts().to_numpy()
    assert activity.max() > 10 * np.median(activity), "a few users rate very many books"
    # Planted structure: users concentrate on few genres.
    genres = {r["book_id"]: max(r["genres"], key=r["genres"].get)
              for r in _json_lines(data_dir / "goodreads_book_genres_initial.json.gz")}
    book_ids = pd.read_csv(data_dir / "book_id_map.csv", dtype={"book_id": str}).book_id
    df["genre"] = book_ids.to_numpy()[df.book_id].astype(object)
    df["genre"] = df.genre.map(genres)
    def favourite_genre_share(frame):
        active = frame.groupby("user_id").filter(lambda g: len(g) >= 20)
        return active.groupby("user_id").genre.agg(
            lambda g: g.value_counts(normalize=True).iloc[0]).median()

    shuffled = df.assign(genre=df.genre.sample(frac=1.0, random_state=0).to_numpy())
    assert favourite_genre_share(df) > 1.5 * favourite_genre_share(shuffled), \
        "a user's favourite genre holds far more of their books than by chance"


def test_titles_and_authors_are_readable_and_distinct(data_dir):
    books = _json_lines(data_dir / "goodreads_books.json.gz")
    titles = [b["title"] for b in books]
    assert len(set(titles)) == len(titles)
    assert all(t and t[0].isupper() for t in titles)
    assert any("#2)" in t for t in titles), "some books form numbered series"
    authors = _json_lines(data_dir / "goodreads_book_authors.json.gz")
    names = [a["name"] for a in authors]
    assert len(set(names)) == len(names) and all(" " in n for n in names)
    author_ids = {a["author_id"] for a in authors}
    assert all(a["author_id"] in author_ids for b in books for a in b["authors"])


def test_same_seed_same_bytes_any_workers_other_seed_other_data(tmp_path):
    args = ["--ratings", "3000", "--books", "200", "--users", "100", "--chunk_users", "30"]
    generate.run(["--output", str(tmp_path / "a"), "--seed", "11", "--workers", "1"] + args)
    # chunks made by forked worker processes: the same bytes
    generate.run(["--output", str(tmp_path / "b"), "--seed", "11", "--workers", "3"] + args)
    generate.run(["--output", str(tmp_path / "c"), "--seed", "12"] + args)
    for name in ("goodreads_interactions.csv", "goodreads_books.json.gz", "user_id_map.csv",
                 "goodreads_book_authors.json.gz", "goodreads_book_genres_initial.json.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    assert len(pd.read_csv(tmp_path / "a" / "goodreads_interactions.csv")) == 3000
    assert not list(tmp_path.glob("*/.tmp-*")), "no temporary files left behind"


def test_bad_arguments_give_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        generate.run(["--output", "x", "--ratings", "1000000", "--books", "10", "--users", "5"])
    assert "too many" in capsys.readouterr().err


@pytest.fixture(scope="module")
def big_catalogue():
    """The catalogue plan of 150k books: three times what the old retry-for-unused-title
    generator could name without falling back to "Title, Book 37" suffixes."""
    world = readers.World(150_000, 10, seed=1)
    return world, Catalogue(np.random.default_rng(1), world)


def test_titles_stay_distinct_and_readable_at_scale(big_catalogue):
    world, plan = big_catalogue
    titles = plan.titles(np.arange(150_000)).to_pylist()
    assert len(set(titles)) == len(titles)
    assert len({t.lower() for t in titles}) == len(titles), "distinct ignoring case (ego --title)"
    names = sample_names.Titles()
    for genre in range(len(sample_names.GENRES)):
        base = set(names.base.to_pylist()[names.offsets[genre]:][:names.sizes[genre]])
        in_genre = [t for t, g in zip(titles, world.book_genre) if g == genre]
        parts = [t.split(": ") for t in in_genre]
        # every title is a one-part title of its genre, or two different ones joined by ": "
        assert all(len(p) in (1, 2) and set(p) <= base and len(set(p)) == len(p) for p in parts)
        single = sum(len(p) == 1 for p in parts)
        # plain titles are all used before any two-part one
        assert single == min(len(in_genre), len(base))


def test_series_are_runs_of_one_topic_with_distinct_names(big_catalogue):
    world, plan = big_catalogue
    members = np.flatnonzero(plan.book_series >= 0)
    assert 0.05 < len(members) / 150_000 < 0.12, "~8% of books are in a series"
    series = plan.book_series[members]
    for s in np.unique(series)[:500]:
        books = members[series == s]
        assert len(set(world.book_topic[books])) == 1
        assert sorted(plan.book_volume[books]) == list(range(1, len(books) + 1))
    names = plan.series_names(np.unique(series)).to_pylist()
    assert len(set(names)) == len(names) and all(n.split()[-1] in sample_names._SERIES_KINDS
                                                 for n in names)


def test_author_names_are_distinct_readable_and_cover_every_tier():
    rng = np.random.default_rng(0)
    names = sample_names.draw_author_names(rng, 200_000).to_pylist()
    assert len(set(names)) == len(names)
    pattern = r"[A-Z][a-z]+ ([A-Z]\. ){0,2}[A-Z][a-z]+(-[A-Z][a-z]+)?"
    assert pd.Series(names).str.fullmatch(pattern).all()
    # Decoding is one-to-one over the whole space, tier boundaries included.
    index = np.unique(np.concatenate([rng.integers(0, sample_names.MAX_AUTHORS, 100_000),
                                      np.cumsum(sample_names._AUTHOR_TIERS)[:-1] + [[-1], [0]],
                                      [0, sample_names.MAX_AUTHORS - 1]], axis=None))
    decoded = sample_names.author_names(index).to_pylist()
    assert len(set(decoded)) == len(index)
    assert pd.Series(decoded).str.fullmatch(pattern).all()


def test_draw_distinct_uses_plain_tiers_first_and_refuses_too_many():
    rng = np.random.default_rng(0)
    picks = sample_names.draw_distinct(rng, 150, [100, 1000])
    assert len(set(picks.tolist())) == 150 and (picks < 100).sum() == 100 and picks.max() < 1100
    with pytest.raises(ValueError, match="distinct names"):
        sample_names.draw_distinct(rng, 1101, [100, 1000])
