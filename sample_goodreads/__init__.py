"""A synthetic data set laid out exactly like the UCSD Goodreads Book Graph (no Beam inside).

    python -m sample_goodreads --output /tmp/goodreads --ratings 1000000

The data has the structure that makes the rest of the pipeline meaningful, with the noise
of real readers, so that the demo ranks the methods as real reading data does
(docs/input_format.md has the figures):

* books belong to one of 10 Goodreads genres and, inside a genre, to a finer
  *topic* (e.g. one kind of fantasy); titles and author names are readable;
  books of one topic and near popularity form *companion groups* (a series, one
  author's books: one author each), so similar books exist to be found;
* popularity is Zipf-Mandelbrot over books: a flat head of best-sellers and a long
  tail (the top 1% of books get ~10% of reads, 8% on real dense Goodreads readers);
* each user reads in several topics (1 + Poisson(5), at most 10), picked by the
  popularity of their books, later ones often in the first's genre, with long-tailed
  weights (Dirichlet 0.6: one leads, the others trail); a per-user share of their
  books (mean 0.71) comes from these topics, the rest follows popularity across all
  topics, and one draw in ten is a companion of another of the user's books;
* user activity is log-normal, so a few users read very many books;
* ratings are 0..5 with 0 = "not rated" (about half the rows, as in the real
  data); books in a user's topics get higher ratings;
* shelves are noisy: some books miss their genre's shelf or sit on a sibling
  topic's shelf as often as on their own;
* (user, book) pairs are unique; rows are grouped by user like the real CSV.

Beside the UCSD files, `book_topics.csv` gives each book's planted topic: the answer
key against which benchmarks/bench_neighbour_quality.py scores the graph's neighbours.

Modules: `readers` (who reads what: topics, popularity, tastes, the draw of interactions
and ratings), `books` (titles, series, authors and shelves of the catalogue), `names`
(readable, distinct names), `generate` (the command line and the files).
"""
