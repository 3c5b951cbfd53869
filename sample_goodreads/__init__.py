"""A synthetic data set laid out exactly like the UCSD Goodreads Book Graph (no Beam inside).

    python -m sample_goodreads --output /tmp/goodreads --ratings 1000000

The data has the structure that makes the rest of the pipeline meaningful:

* books belong to one of 10 Goodreads genres and, inside a genre, to a finer
  *topic* (e.g. one kind of fantasy); titles and author names are readable and
  each author writes in one topic, so similar books exist to be found;
* each user likes one to three topics; three quarters of a user's books come from them,
  the rest from the global best-seller list;
* book popularity and user activity are heavy-tailed (Zipf / log-normal), so a
  few books hold most ratings, as on Goodreads;
* ratings are 0..5 with 0 = "not rated" (about half the rows, as in the real
  data); books in a user's favourite topics get higher ratings;
* (user, book) pairs are unique; rows are grouped by user like the real CSV.

Beside the UCSD files, `book_topics.csv` gives each book's planted topic: the answer
key against which benchmarks/bench_neighbour_quality.py scores the graph's neighbours.

Modules: `readers` (who reads what: topics, popularity, tastes, the draw of interactions
and ratings), `books` (titles, series, authors and shelves of the catalogue), `names`
(readable, distinct names), `generate` (the command line and the files).
"""
