import subprocess
def test_x(pg_cluster):
    url = pg_cluster.create_database("bench")
    out = subprocess.run([".venv/bin/python", "bench/store_write.py", "--url", url, "--batches", "2000", "--rounds", "3"], capture_output=True, text=True)
    print(out.stdout, out.stderr)
