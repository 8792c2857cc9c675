-- The cohort: every rating of users with at least $min_ratings ratings, with the movie's
-- first listed genre as its segment. `ratings` and `movies` are the step's table inputs
-- (DuckDB reads them by name); $min_ratings and $unknown are bound by the driver.
WITH cohort AS (
    SELECT user_id FROM ratings GROUP BY user_id HAVING count(*) >= $min_ratings
)
SELECT
    r.user_id,
    r.movie_id,
    r.rating,
    r.timestamp,
    m.title,
    coalesce(nullif(split_part(m.genres, '|', 1), '(no genres listed)'), $unknown) AS segment
FROM ratings AS r
JOIN cohort USING (user_id)
JOIN movies AS m USING (movie_id)
ORDER BY r.user_id, r.movie_id
