"""Speed, load and soak benchmarks: each prints figures next to a plain baseline or a goal.

    python -m eval.bench                 # speed (eval/bench/speed.py): build, warm, cold, memory, 1M rows
    python -m eval.bench.load            # answers/s and latency of a running `qa serve`
    python -m eval.bench.soak            # questions, uploads and deletions together for ten minutes
    python -m eval.bench.scale           # 1M passages
    python -m eval.bench.versus --other DIR   # warm latency of this checkout against another

They start servers with ``eval/server.py`` (as the tests do) and read process figures with
``eval/process.py``; percentiles are ``eval.metrics.percentile``.
"""
