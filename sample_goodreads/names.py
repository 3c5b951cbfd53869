"""Readable, distinct names for the sample data: book titles, series names, author names.

Each kind of name is a *name space*: a fixed, enumerable list of tiers, plainest
first ("The Silver Throne" before "The Silver Throne: Oath of the North"). A data
set of n names draws n distinct indices into the tiers (`draw_distinct`), taking
every plain name before any longer one, and decodes only the indices it writes.
Nothing is retried and no set of used names is kept, so 2.36M titles cost a few
seconds and a few bytes a book; the previous retry-until-unused loop ran out of
plain titles near 45k books and did not finish 1M books in 13 minutes.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

GENRES = [
    "children", "comics, graphic", "fantasy, paranormal", "fiction",
    "history, historical fiction, biography", "mystery, thriller, crime",
    "non-fiction", "poetry", "romance", "young-adult",
]

# Title vocabulary per genre: (adjectives, nouns, places). Kept small and readable.
_WORDS = {
    "children": (
        "Little Brave Sleepy Happy Giant Tiny Silly Curious Busy Hungry Lost Jolly",
        "Bear Duck Dragon Train Moon Bunny Tractor Kitten Owl Pirate Robot Garden",
        "the Farm|the Sea|the Woods|Town|the Zoo|the Park|Bedtime|the Pond"),
    "comics, graphic": (
        "Dark Iron Cosmic Savage Last Crimson Hidden Electric Mighty Broken Night Amazing",
        "Knight Avenger Legion Saga Crusade Sentinel Outlaws Patrol Titans Vigilante Ronin Watch",
        "Gotham Deep|the Multiverse|Sector 9|Neo City|the Badlands|the Void|Metro|the Rift"),
    "fantasy, paranormal": (
        "Shadow Silver Burning Hollow Wild Cursed Ancient Crimson Frozen Raven Storm Blood",
        "Throne Crown Blade Witch Wolf Queen Prophecy Dragon Mage Gate Oath Realm",
        "Eldermoor|the North|the Ashlands|Ravenhold|the Veil|Iron Keep|the Spires|Duskwood"),
    "fiction": (
        "Quiet Small Long Bright Distant Ordinary Paper Empty Last Hidden Secret Perfect",
        "House Summer River Daughter Marriage Lighthouse Garden Letters Island Orchard Neighbours Kitchen",
        "Brooklyn|Maine|Dublin|the Valley|Savannah|Lisbon|the Coast|Vermont"),
    "history, historical fiction, biography": (
        "Great Forgotten Lost Royal Imperial Last Secret Victorian Fallen Golden Tudor Unknown",
        "Empire Revolution Dynasty Voyage Queen War Campaign Admiral Republic Crusade Frontier Pharaoh",
        "Rome|Versailles|Normandy|Byzantium|Stalingrad|Gettysburg|the Nile|Tudor England"),
    "mystery, thriller, crime": (
        "Silent Deadly Cold Final Dark Missing Guilty Broken Midnight Fatal Hidden Perfect",
        "Witness Alibi Stranger Code Verdict Suspect Agent Cipher Motive Ransom Informant Trap",
        "Baker Street|the Docks|Oslo|the Lake|Cape Cod|the Bayou|Chinatown|the Highway"),
    "non-fiction": (
        "Essential Hidden Deep Simple New Practical Thinking Human Better Invisible Tiny Whole",
        "Habits Mind Economics Brain Money Leadership Sleep Focus Power Nutrition Wealth Science",
        "Work|the Modern World|Everyday Life|the Brain|Business|Nature|Society|the Future"),
    "poetry": (
        "Salt Blue Wild Winter Broken Tender Quiet Burning Paper Amber Hollow Open",
        "Psalms Songs Elegies Odes Hymns Sonnets Verses Ghazals Lullabies Prayers Litanies Haiku",
        "the Body|the Tide|Stone|Rain|the Orchard|Night|Grief|the Field"),
    "romance": (
        "Wicked Sweet Reckless Forbidden Stolen Tempting Secret Scandalous Unexpected Wild Fated Perfect",
        "Duke Kiss Promise Bride Heart Proposal Billionaire Summer Affair Vow Rogue Fling",
        "Paris|Montana|the Ranch|Highland|London|Texas|the Vineyard|Cornwall"),
    "young-adult": (
        "Shattered Glass Starless Wicked Hidden Rebel Chosen Electric Burning Silent Fallen Midnight",
        "Academy Games Chosen Rebellion Heir Trials Legacy Hunters Selection Circle Division Society",
        "District 7|the Wall|Sector Zero|the Academy|the Maze|Ember|the Outlands|Skyhold"),
}
_FIRST = ("Anna Ben Clara David Elena Farid Grace Hiro Ines Jonas Kira Liam Maya Noor Omar "
          "Priya Quinn Rosa Sam Tara Uma Victor Wen Ximena Yusuf Zoe Amara Bruno Chloe Dmitri "
          "Esme Felix Greta Hugo Isla Jasper Kofi Lena Mateo Nina Oscar Paloma Rafael Sofia "
          "Tomas Ulla Vera Wilhelm Yara Zain").split()
_LAST = ("Abbott Baker Carver Dalton Ellison Fischer Garcia Hale Ibsen Jensen Kowalski Lindqvist "
         "Morrow Nakamura Okafor Petrov Quiroga Rossi Sato Thorne Underwood Varga Whitaker Xu "
         "Yilmaz Zeller Ashworth Blackwood Castellanos Devereaux Eriksen Fontaine Grimaldi "
         "Halvorsen Iverson Jovanovic Kaplan Lachance Mbeki Novak Oyelaran Pellegrini Rahman "
         "Silva Takahashi Ueda Vasquez Winslow Yamamoto Zhang").split()
_SERIES_KINDS = ["Chronicles", "Cycle", "Trilogy", "Saga", "Quartet", "Sequence", "Series"]
_INITIALS = [chr(65 + i) for i in range(26)]


def draw_distinct(rng, count, tier_sizes):
    """`count` distinct indices into tiers laid end to end, in random order.

    Earlier (plainer) tiers are used up before later ones; inside a tier the
    indices are a uniform sample without replacement. Raises ValueError when
    the tiers together hold fewer than `count` names.
    """
    picks, offset, left = [], 0, count
    for size in tier_sizes:
        take = min(left, size)
        if take:
            picks.append(offset + rng.choice(size, take, replace=False))
        offset, left = offset + size, left - take
    if left:
        raise ValueError(f"only {offset:,} distinct names for {count:,}")
    chosen = np.concatenate(picks) if picks else np.zeros(0, np.int64)
    rng.shuffle(chosen)
    return chosen


def _plural(noun):
    if noun.endswith("s"):
        return noun
    if noun.endswith(("ch", "sh", "x")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _genre_titles(genre):
    """Every one-part title of a genre, plainest patterns first (~4,400 per genre)."""
    adjs, nouns, places = (x.split("|") if "|" in x else x.split() for x in _WORDS[genre])
    pairs = [(n, n2) for n in nouns for n2 in nouns if n2 != n]
    titles = [f"The {a} {n}" for a in adjs for n in nouns]
    titles += [f"The {n} of {p}" for n in nouns for p in places]
    titles += [f"{n} of {p}" for n in nouns for p in places]
    titles += [f"{a} {_plural(n)}" for a in adjs for n in nouns]
    titles += [f"The {n}'s {n2}" for n, n2 in pairs]
    titles += [f"The {a} {n} of {p}" for a in adjs for n in nouns for p in places]
    for a in adjs:
        for n in nouns:
            article = "The" if n.endswith("s") else "An" if a[0] in "AEIOU" else "A"
            titles += [f"{article} {a} {n} in {p}" for p in places]
    titles += [f"{n} and the {a} {n2}" for n, n2 in pairs for a in adjs]
    return titles


def _base_titles():
    """One-part titles per genre, each title in the first genre that makes it (so all distinct)."""
    seen, out = set(), []
    for genre in GENRES:
        kept = [t for t in dict.fromkeys(_genre_titles(genre)) if t not in seen]
        seen.update(kept)
        out.append(kept)
    return out


def concat(*parts):
    """Element-wise string concatenation of pyarrow arrays and str scalars."""
    return pc.binary_join_element_wise(*parts, "")


def int_strings(values):
    """Decimal strings of integers, as a pyarrow array."""
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


class Titles:
    """Book titles per genre: its one-part titles, then "Part: Other part" pairs.

    Pairs of distinct one-part titles of the same genre are distinct from each
    other and from every one-part title (those never contain ": "), so a genre
    has ~4,500 + 4,500 x 4,500 titles and the whole space stays distinct.
    Series names are a one-part title and a kind ("The Raven Throne Cycle"),
    the simplest titles ("The {adjective} {noun}", "The {noun} of {place}")
    first; title + " " + kind is distinct because no kind ends with another.
    """

    def __init__(self):
        bases = _base_titles()
        self.sizes = np.array([len(b) for b in bases], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.simple = np.array([next((i for i, t in enumerate(b) if not t.startswith("The ")), len(b))
                                for b in bases], np.int64)
        self.base = pa.array([t for b in bases for t in b])
        self.kinds = pa.array(_SERIES_KINDS)

    def tier_sizes(self, genre):
        n = int(self.sizes[genre])
        return [n, n * (n - 1)]

    def series_tier_sizes(self, genre):
        kinds, simple = len(_SERIES_KINDS), int(self.simple[genre])
        return [simple * kinds, (int(self.sizes[genre]) - simple) * kinds]

    def titles(self, genre, index):
        """pyarrow strings of titles `index` (from `draw_distinct` over `tier_sizes`)."""
        n, offset = self.sizes[genre], self.offsets[genre]
        single = index < n
        first, second = np.divmod(np.where(single, 0, index - n), np.maximum(n - 1, 1))
        second += second >= first
        one = self.base.take(pa.array(offset + np.where(single, index, first)))
        two = self.base.take(pa.array(offset + second))
        return pc.if_else(pa.array(single), one, concat(one, ": ", two))

    def series_names(self, genre, index):
        title, kind = np.divmod(index, len(_SERIES_KINDS))
        return concat(self.base.take(pa.array(self.offsets[genre] + title)), " ",
                      self.kinds.take(pa.array(kind)))


# Author names: "First Last", "First M. Last", "First M. N. Last", "First M. Last-Other".
_AUTHOR_TIERS = [len(_FIRST) * len(_LAST),
                 len(_FIRST) * 26 * len(_LAST),
                 len(_FIRST) * 26 * 26 * len(_LAST),
                 len(_FIRST) * 26 * len(_LAST) * (len(_LAST) - 1)]
MAX_AUTHORS = sum(_AUTHOR_TIERS)


def draw_author_names(rng, count):
    """`count` distinct readable author names (pyarrow strings), plain "First Last" ones first."""
    return author_names(draw_distinct(rng, count, _AUTHOR_TIERS))


def author_names(index):
    starts = np.cumsum([0] + _AUTHOR_TIERS[:-1])
    tier = np.searchsorted(starts, index, side="right") - 1
    rest, first = np.divmod(index - starts[tier], len(_FIRST))
    rest, last = np.divmod(rest, len(_LAST))
    rest, middle = np.divmod(rest, 26)
    other = rest + (rest >= last)
    first_names, last_names, initials = pa.array(_FIRST), pa.array(_LAST), pa.array(_INITIALS)
    initial = concat(initials.take(pa.array(middle)), ". ")
    second_initial = concat(initials.take(pa.array(np.minimum(rest, 25))), ". ")
    middle_part = pc.if_else(pa.array(tier == 0), "",
                             pc.if_else(pa.array(tier == 2), concat(initial, second_initial), initial))
    surname = last_names.take(pa.array(last))
    double = concat(surname, "-", last_names.take(pa.array(np.minimum(other, len(_LAST) - 1))))
    return concat(first_names.take(pa.array(first)), " ", middle_part,
                  pc.if_else(pa.array(tier == 3), double, surname))


# Goodreads-like shelf slugs for `popular_shelves`. Every book carries some of the generic
# shelves; its genre's shelves (the genre's words); and 2-3 of its planted topic's shelves
# (TOPIC_SHELVES[genre * topics_per_genre + k], distinctive of that topic alone).
GENERIC_SHELVES = ["to-read", "currently-reading", "favorites", "owned", "books-i-own"]
OPTIONAL_SHELVES = ["kindle", "library", "to-buy", "default", "ebooks", "wish-list", "re-read"]
GENRE_SHELVES = [[w.strip().replace(" ", "-") for w in g.split(",")] for g in GENRES]
_TOPIC_SHELVES = {
    "children": ["picture-books bedtime-stories read-alouds",
                 "animal-stories talking-animals farm-animals",
                 "early-readers beginning-readers phonics",
                 "chapter-books middle-grade school-stories",
                 "fairy-tales folk-tales fables",
                 "nursery-rhymes rhyming board-books"],
    "comics, graphic": ["superheroes marvel dc-comics",
                        "manga shonen shojo",
                        "graphic-memoir autobiographical-comics slice-of-life",
                        "comic-strips humor-comics webcomics",
                        "sci-fi-comics space-comics dystopian-comics",
                        "horror-comics noir-comics vertigo"],
    "fantasy, paranormal": ["epic-fantasy high-fantasy dragons",
                            "urban-fantasy vampires werewolves",
                            "sword-and-sorcery grimdark dark-fantasy",
                            "fae faeries fairy-tale-retellings",
                            "magic-school wizards magic-system",
                            "ghosts witches haunted-houses"],
    "fiction": ["literary-fiction contemporary-fiction book-club",
                "classics classic-literature 19th-century",
                "family-saga family-drama multi-generational",
                "womens-fiction chick-lit beach-reads",
                "magical-realism surreal latin-american",
                "short-stories anthologies novellas"],
    "history, historical fiction, biography": ["world-war-ii wwii holocaust",
                                               "ancient-history ancient-rome greek-mythology",
                                               "tudors british-history royalty",
                                               "memoirs autobiography biographies",
                                               "american-history civil-war presidents",
                                               "medieval vikings crusades"],
    "mystery, thriller, crime": ["cozy-mystery amateur-sleuth culinary-mystery",
                                 "police-procedural detective crime-fiction",
                                 "psychological-thriller domestic-thriller suspense",
                                 "espionage spy-thriller cold-war",
                                 "nordic-noir scandinavian-crime noir",
                                 "legal-thriller courtroom medical-thriller"],
    "non-fiction": ["self-help personal-development productivity",
                    "popular-science physics astronomy",
                    "business economics leadership",
                    "psychology neuroscience behavioral-economics",
                    "health nutrition fitness",
                    "travel nature-writing adventure-travel"],
    "poetry": ["contemporary-poetry instapoetry spoken-word",
               "classic-poetry romantic-poets sonnets",
               "haiku japanese-poetry zen",
               "love-poems sappho lyric-poetry",
               "nature-poetry pastoral ecopoetry",
               "religious-poetry spiritual psalms"],
    "romance": ["historical-romance regency dukes",
                "contemporary-romance new-adult romcom",
                "western-romance cowboys small-town-romance",
                "romantic-suspense bodyguards military-romance",
                "billionaire-romance office-romance erotica",
                "paranormal-romance shifters vampire-romance"],
    "young-adult": ["dystopian dystopia post-apocalyptic",
                    "ya-fantasy chosen-one fantasy-romance",
                    "ya-contemporary coming-of-age high-school",
                    "space-opera science-fiction aliens",
                    "ya-romance teen-romance love-triangle",
                    "ya-mystery boarding-school ya-thriller"],
}
TOPIC_SHELVES = [names.split() for g in GENRES for names in _TOPIC_SHELVES[g]]
