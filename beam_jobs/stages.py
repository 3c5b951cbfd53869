"""The stages of the preprocess job as named composite PTransforms, one per step of the README.

`preprocess.build_pipeline` chains them; the Dataflow job graph shows one box
per stage that opens onto its steps. A stage that drops or rejects rows returns
a `StageResult`: its rows together with its counts (dicts summed into
manifest.json) and its rejects, so that the counts are gathered in one place.
"""
from typing import NamedTuple, Optional

import apache_beam as beam

from beam_jobs import catalog, counting, index, parsing, partitions, reading, shards, validation
from beam_jobs.rejects import Reject
from pipeline_common import artifacts, fileio


class StageResult(NamedTuple):
    """What a stage hands on: its rows, its counts and (if it rejects rows) its rejects."""
    rows: beam.PCollection
    counts: beam.PCollection  # dicts of counts
    rejects: Optional[beam.PCollection] = None  # `rejects.Reject`s


def _singleton(pcoll):
    return beam.pvalue.AsSingleton(pcoll)


class IdMaps(NamedTuple):
    """The csv id maps as singleton PCollections (parsing.read_user_map / read_book_map)."""
    user_map: beam.PCollection
    book_map: beam.PCollection

    def side_inputs(self):
        return {"user_map": _singleton(self.user_map), "book_map": _singleton(self.book_map)}


class ReadBlocksOfFile(beam.PTransform):
    """A file (local or gs://, plain or compressed) -> `LineBlock`s spread over workers.

    Read tasks are always spread. The blocks of a compressed file (read as one
    stream) are spread too when `reshuffle`; the catalogue files skip that:
    their blocks are parsed where they are read (on all of that worker's cores)
    and only the slim parsed tables move, not the raw JSON.
    """

    def __init__(self, path, block_size, reshuffle=True):
        super().__init__()
        self._path, self._block_size, self._reshuffle = path, block_size, reshuffle

    def expand(self, pbegin):
        blocks = (pbegin | "ListTasks" >> beam.Create(reading.read_tasks(self._path, self._block_size))
                  | "SpreadTasks" >> beam.Reshuffle()
                  | "Read" >> beam.ParDo(reading.ReadBlocks(self._block_size)))
        if self._reshuffle and parsing.is_compressed(self._path):
            blocks = blocks | "SpreadBlocks" >> beam.Reshuffle()
        return blocks


class ReadCatalogFile(beam.PTransform):
    """A catalogue file (books, authors or genres) -> StageResult of parsed pyarrow tables.

    Bad lines are rejected (`bad_catalog_row`) and counted under `catalog/`.
    """

    def __init__(self, kind, path, block_size):
        super().__init__()
        self._kind, self._path, self._block_size = kind, path, block_size

    def expand(self, pbegin):
        parsed = (pbegin | "ReadBlocks" >> ReadBlocksOfFile(self._path, self._block_size, reshuffle=False)
                  | "Parse" >> beam.ParDo(validation.ParseCatalogFile(self._kind)).with_outputs(
                      counting.REJECTS, counting.COUNTS, main="tables"))
        return StageResult(parsed.tables, parsed[counting.COUNTS], parsed[counting.REJECTS])


class CatalogBookIds(beam.PTransform):
    """Parsed goodreads_books tables -> one sorted array of every catalogue book id."""

    def expand(self, tables):
        return (tables | "Ids" >> beam.Map(validation.catalog_ids_of)
                | "Union" >> beam.CombineGlobally(validation.SortedUnion()))


class ReadIdMaps(beam.PTransform):
    """user_id_map.csv and book_id_map.csv -> IdMaps (each read whole, on one worker)."""

    def __init__(self, user_map_path, book_map_path):
        super().__init__()
        self._user, self._book = user_map_path, book_map_path

    def expand(self, pbegin):
        return IdMaps(
            pbegin | "UserMapPath" >> beam.Create([self._user]) | "ReadUserMap" >> beam.Map(parsing.read_user_map),
            pbegin | "BookMapPath" >> beam.Create([self._book]) | "ReadBookMap" >> beam.Map(parsing.read_book_map))


class RejectMalformed(beam.PTransform):
    """`LineBlock`s of interactions -> StageResult of `ValidatedBlock`s; bad rows rejected with their reason.

    Rejects rows that do not parse, whose ids are not in the id maps (csv input)
    or whose book is not in the catalogue (`catalog_ids`: CatalogBookIds).
    Counts: rows_read, rejected/<reason>.
    """

    def __init__(self, input_format, catalog_ids, id_maps=None):
        super().__init__()
        self._format, self._catalog_ids, self._id_maps = input_format, catalog_ids, id_maps

    def expand(self, blocks):
        side = self._id_maps.side_inputs() if self._id_maps else {}
        parsed = blocks | "ParseAndValidate" >> beam.ParDo(
            validation.ParseInteractions(self._format), _singleton(self._catalog_ids), **side).with_outputs(
                counting.REJECTS, counting.COUNTS, main="rows")
        return StageResult(parsed.rows, parsed[counting.COUNTS], parsed[counting.REJECTS])


class StopIfMostlyMalformed(beam.PTransform):
    """(counts of the interactions, counts of the books file, interaction rejects) -> [True].

    Fails the job with one message (counts by reason and three examples) when
    more than `max_reject_fraction` of the rows are rejected; the heavy stages
    wait for its result.
    """

    def __init__(self, max_reject_fraction):
        super().__init__()
        self._max = max_reject_fraction

    def expand(self, inputs):
        interaction_counts, book_counts, rejects = inputs
        samples = rejects | "Samples" >> beam.combiners.Top.Smallest(3)
        return ((interaction_counts, book_counts) | "Flatten" >> beam.Flatten()
                | "Sum" >> beam.CombineGlobally(counting.SumCounts())
                | "Check" >> beam.Map(counting.check_reject_share, self._max, _singleton(samples)))


class DropBelowMinRating(beam.PTransform):
    """`ValidatedBlock`s -> StageResult of `RatedBlock`s with rating >= min_rating (filtered/below_min_rating)."""

    def __init__(self, min_rating, id_maps=None):
        super().__init__()
        self._min_rating, self._id_maps = min_rating, id_maps

    def expand(self, blocks):
        side = self._id_maps.side_inputs() if self._id_maps else {}
        rated = blocks | "Filter" >> beam.ParDo(partitions.DropBelowMinRating(self._min_rating), **side).with_outputs(
            counting.COUNTS, main="rows")
        return StageResult(rated.rows, rated[counting.COUNTS])


class Deduplicate(beam.PTransform):
    """`RatedBlock`s -> StageResult of `UserPartition`s: rows grouped into `num_partitions` partitions
    by user, each (user, book) pair once with its highest rating (filtered/duplicate).

    Waits for `reject_check` (StopIfMostlyMalformed) before it starts.
    """

    def __init__(self, num_partitions, reject_check):
        super().__init__()
        self._num, self._check = num_partitions, reject_check

    def expand(self, blocks):
        deduped = (blocks | "PartitionByUser" >> beam.ParDo(partitions.PartitionByUser(self._num))
                   | "GroupByPartition" >> beam.GroupByKey()
                   | "CollapseDuplicates" >> beam.ParDo(partitions.DeduplicatePartition(),
                                                        _singleton(self._check)).with_outputs(
                       counting.COUNTS, main="rows"))
        return StageResult(deduped.rows, deduped[counting.COUNTS])


class SelectTopBooks(beam.PTransform):
    """`UserPartition`s -> (StageResult of `KeptPartition`s with only the top books' rows
    (filtered/not_top_book), the sorted top book ids as a singleton PCollection).

    The top books have the most interactions; ties go to the smaller Goodreads id.
    """

    def __init__(self, top_books):
        super().__init__()
        self._top = top_books

    def expand(self, user_partitions):
        top_ids = (user_partitions | "CountBooks" >> beam.Map(partitions.book_counts_of)
                   | "SumBookCounts" >> beam.CombineGlobally(counting.SumIdCounts())
                   | "TopIds" >> beam.Map(partitions.select_top_books, self._top))
        kept = user_partitions | "KeepTopBooks" >> beam.ParDo(
            partitions.KeepTopBooks(), _singleton(top_ids)).with_outputs(counting.COUNTS, main="rows")
        return StageResult(kept.rows, kept[counting.COUNTS]), top_ids


class DropSparseUsers(beam.PTransform):
    """`KeptPartition`s -> StageResult of those users with >= min_user_ratings rows (filtered/user_below_min_ratings)."""

    def __init__(self, min_user_ratings):
        super().__init__()
        self._min = min_user_ratings

    def expand(self, kept_partitions):
        kept = kept_partitions | "Filter" >> beam.ParDo(partitions.DropSparseUsers(self._min)).with_outputs(
            counting.COUNTS, main="rows")
        return StageResult(kept.rows, kept[counting.COUNTS])


class BuildIndex(beam.PTransform):
    """Kept partitions -> StageResult of one `SelectionIndex` (counts: num_users, num_books, checksum)."""

    def __init__(self, top_ids):
        super().__init__()
        self._top_ids = top_ids

    def expand(self, kept_partitions):
        book_counts = (kept_partitions | "KeptBookCounts" >> beam.Map(index.kept_book_counts,
                                                                      _singleton(self._top_ids))
                       | "SumKeptBookCounts" >> beam.CombineGlobally(counting.SumIdCounts()))
        users = (kept_partitions | "KeptUsers" >> beam.Map(index.kept_users)
                 | "CollectKeptUsers" >> beam.combiners.ToList())
        built = users | "Build" >> beam.Map(index.build_index, _singleton(book_counts), _singleton(self._top_ids))
        return StageResult(built, built | "Counts" >> beam.Map(index.index_counts))


class BuildVocabularies(beam.PTransform):
    """The `SelectionIndex` -> tf.Transform's transform_fn written to `transform_dir`.

    The vocabularies list users and books in index order (vocab_transform
    explains how); the transform graph maps raw ids to the indices.
    """

    def __init__(self, transform_dir, temp_dir):
        super().__init__()
        self._transform_dir, self._temp_dir = transform_dir, temp_dir

    def expand(self, selection_index):
        import tensorflow_transform.beam as tft_beam  # TensorFlow: only where the job is built
        from beam_jobs import vocab_transform
        with tft_beam.Context(temp_dir=self._temp_dir, force_tf_compat_v1=False):
            analysis = selection_index | "AnalysisInput" >> beam.FlatMap(vocab_transform.analysis_batches)
            transform_fn = ((analysis, vocab_transform.analysis_adapter_config())
                            | "AnalyzeVocabularies" >> tft_beam.AnalyzeDataset(vocab_transform.preprocessing_fn))
            return transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(self._transform_dir)


class WriteExamples(beam.PTransform):
    """Kept partitions -> train/eval shards, one pair per partition (empty ones included).

    Each interaction goes to eval when a hash of (user id, book id, seed) falls
    below `eval_fraction`, else to train. Counts: train_examples, eval_examples, empty_shards.
    """

    def __init__(self, output, num_shards, seed, eval_fraction, compression_level, selection_index):
        super().__init__()
        self._output, self._num, self._level = output, num_shards, compression_level
        self._seed, self._eval_fraction, self._index = seed, eval_fraction, selection_index

    def expand(self, kept_partitions):
        written = kept_partitions | "SplitTrainEvalAndWrite" >> beam.ParDo(
            shards.SplitAndWriteShards(self._output, self._num, self._seed, self._eval_fraction, self._level),
            _singleton(self._index)).with_outputs(counting.COUNTS, main="parts")
        empty = (written.parts | "CollectWritten" >> beam.combiners.ToList()
                 | "WriteEmptyShards" >> beam.Map(shards.write_empty_shards, self._output, self._num, self._level))
        return StageResult(written.parts, (written[counting.COUNTS], empty) | "FlattenCounts" >> beam.Flatten())


class WriteCatalog(beam.PTransform):
    """The `SelectionIndex` -> book_catalog.parquet, from the kept books' rows of the catalogue files.

    `book_tables` are the parsed goodreads_books tables; the authors and genres
    files (genres optional: None) are read here. Returns a StageResult whose
    counts and rejects include those of the two files read.
    """

    def __init__(self, output, book_tables, top_ids, authors_path, genres_path, block_size):
        super().__init__()
        self._output, self._books, self._top_ids = output, book_tables, top_ids
        self._authors, self._genres, self._block_size = authors_path, genres_path, block_size

    def expand(self, selection_index):
        pbegin = selection_index.pipeline
        top_ids = _singleton(self._top_ids)
        kept_books = (self._books | "KeepBooks" >> beam.FlatMap(catalog.rows_of_kept_books, top_ids)
                      | "CollectBooks" >> beam.combiners.ToList())
        needed = kept_books | "NeededAuthors" >> beam.Map(catalog.needed_author_ids)
        authors = pbegin | "ReadAuthors" >> ReadCatalogFile("authors", self._authors, self._block_size)
        author_list = (authors.rows | "KeepAuthors" >> beam.FlatMap(catalog.filter_authors, _singleton(needed))
                       | "CollectAuthors" >> beam.combiners.ToList())
        read = [authors]
        if self._genres:
            genres = pbegin | "ReadGenres" >> ReadCatalogFile("genres", self._genres, self._block_size)
            read.append(genres)
            genre_tables = genres.rows
        else:
            genre_tables = pbegin | "NoGenres" >> beam.Create([])
        genre_list = (genre_tables | "KeepGenres" >> beam.FlatMap(catalog.rows_of_kept_books, top_ids)
                      | "CollectGenres" >> beam.combiners.ToList())
        written = selection_index | "Write" >> beam.Map(
            catalog.write_catalog, _singleton(kept_books), _singleton(author_list), _singleton(genre_list),
            fileio.join(self._output, artifacts.CATALOG))
        return StageResult(
            written,
            tuple([written] + [r.counts for r in read]) | "FlattenCounts" >> beam.Flatten(),
            tuple(r.rejects for r in read) | "FlattenRejects" >> beam.Flatten())


class WriteRejects(beam.PTransform):
    """Every stage's rejects -> rejected/rejected-SSSSS-of-NNNNN.jsonl, one JSON object per row."""

    def __init__(self, output):
        super().__init__()
        self._prefix = fileio.join(output, artifacts.REJECTED_DIR, artifacts.REJECTED_PREFIX)

    def expand(self, stage_rejects):
        return (stage_rejects | "Flatten" >> beam.Flatten()
                | "Format" >> beam.Map(Reject.to_json)
                | "Write" >> beam.io.WriteToText(self._prefix, file_name_suffix=artifacts.REJECTED_SUFFIX))


class WriteCounts(beam.PTransform):
    """Every stage's counts -> one summed dict written to `path` for the driver's manifest."""

    def __init__(self, path):
        super().__init__()
        self._path = path

    def expand(self, stage_counts):
        return (stage_counts | "Flatten" >> beam.Flatten()
                | "Sum" >> beam.CombineGlobally(counting.SumCounts())
                | "Write" >> beam.Map(counting.write_counts, self._path))
