-- Users at least $min_age years old (the `$min_age` in this comment is not a parameter).
select name, age
from users
where age >= $min_age
order by name
