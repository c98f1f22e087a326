cd /work/main
exec nice -n 5 env PYTHONPATH=src /work/venv/bin/python /work/runs/ctx-v11/train_ctx.py 4000
