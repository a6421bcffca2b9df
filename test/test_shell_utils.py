"""utils/parse_options.sh and utils/launch.sh (local backend), run for real under bash."""
import textwrap

from conftest import UTILS, run


def _script(tmp_path, body):
    script = tmp_path / "s.sh"
    script.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return script


def test_parse_options_sets_known_variables(tmp_path):
    script = _script(tmp_path, f"""
        stage=1
        train_set=""
        use_gpu=false
        help_message="usage: s.sh [--stage N]"
        . {UTILS}/parse_options.sh
        echo "stage=$stage train_set=$train_set use_gpu=$use_gpu rest=$*"
    """)
    out = run([str(script), "--stage", "3", "--train-set=my set", "--use_gpu", "true", "a", "b"]).stdout
    assert out.strip() == "stage=3 train_set=my set use_gpu=true rest=a b"


def test_parse_options_errors_and_help(tmp_path):
    script = _script(tmp_path, f"""
        stage=1
        flag=false
        help_message="usage: s.sh [--stage N]"
        . {UTILS}/parse_options.sh
        echo ran
    """)
    bad = run([str(script), "--nosuch", "1"], check=False)
    assert bad.returncode == 1 and "invalid option '--nosuch'" in bad.stderr
    missing = run([str(script), "--stage"], check=False)
    assert missing.returncode == 1 and "needs a value" in missing.stderr
    notbool = run([str(script), "--flag", "yes"], check=False)
    assert notbool.returncode == 1 and "takes true or false" in notbool.stderr
    helped = run([str(script), "--help"])
    assert "usage: s.sh" in helped.stderr and "ran" not in helped.stdout
    conf = tmp_path / "opts.conf"
    conf.write_text("stage=7\n")
    assert run([str(script), "--config", str(conf)]).returncode == 0


def test_launch_local_array_substitutes_job(tmp_path):
    log = tmp_path / "log" / "job.JOB.log"
    run([str(UTILS / "launch.sh"), "--max_jobs_run", "2", "JOB=1:3", str(log),
         f"echo task JOB > {tmp_path}/out.JOB"])
    for i in (1, 2, 3):
        assert (tmp_path / f"out.{i}").read_text().strip() == f"task {i}"
        text = (tmp_path / "log" / f"job.{i}.log").read_text()
        assert text.startswith(f"# echo task {i}") and "# Accounting: rc=0" in text


def test_launch_reports_failed_jobs(tmp_path):
    log = tmp_path / "f.JOB.log"
    proc = run([str(UTILS / "launch.sh"), "JOB=1:3", str(log), "test JOB -ne 2"], check=False)
    assert proc.returncode == 1
    assert "job 2 failed" in proc.stderr and "1 / 3 failed" in proc.stderr
    assert "# Accounting: rc=1" in (tmp_path / "f.2.log").read_text()
    single = run([str(UTILS / "launch.sh"), str(tmp_path / "one.log"), "echo", "hi"])
    assert single.returncode == 0 and "hi" in (tmp_path / "one.log").read_text()


def test_launch_local_gives_each_job_its_own_gpus(tmp_path):
    """--gpu N on the local backend (teacher and decoding jobs on one machine): each job sees N GPUs of its
    own, and no two jobs that run at the same time share one."""
    log = tmp_path / "log.JOB"
    env = {"CUDA_VISIBLE_DEVICES": "3,5"}
    run([str(UTILS / "launch.sh"), "--gpu", "1", "JOB=1:6", str(log),
         "echo start $(date +%s%N) $CUDA_VISIBLE_DEVICES; sleep 0.$((JOB % 3 + 1)); echo end $(date +%s%N)"], env=env)
    spans = []
    for i in range(1, 7):
        lines = [ln.split() for ln in (tmp_path / f"log.{i}").read_text().splitlines() if not ln.startswith("#")]
        (_, start, device), (_, end) = lines
        assert device in ("3", "5")
        spans.append((int(start), int(end), device))
    for a in spans:
        for b in spans:
            if a is not b and a[2] == b[2]:
                assert a[1] <= b[0] or b[1] <= a[0], spans  # one device: one job at a time
    run([str(UTILS / "launch.sh"), "--gpu", "2", "JOB=1:2", str(log), "echo $CUDA_VISIBLE_DEVICES"],
        env={"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert {(tmp_path / f"log.{i}").read_text().splitlines()[2] for i in (1, 2)} <= {"0,1", "2,3"}
    proc = run([str(UTILS / "launch.sh"), "--gpu", "4", str(tmp_path / "x.log"), "true"], check=False,
               env={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert proc.returncode != 0 and "--gpu 4 per job, but 2 GPU(s) visible" in proc.stderr


def test_launch_rejects_unknown_option(tmp_path):
    proc = run([str(UTILS / "launch.sh"), "--bogus", "1", str(tmp_path / "x.log"), "true"], check=False)
    assert proc.returncode == 2 and "unknown option '--bogus'" in proc.stderr


def test_launch_keeps_arguments_with_spaces_intact(tmp_path):
    """palign.sh passes each argument separately: a --dumpdir with a space must reach the program whole."""
    spaced = tmp_path / "my dump" / "out.JOB"
    spaced.parent.mkdir()
    run([str(UTILS / "launch.sh"), "JOB=1:2", str(tmp_path / "log.JOB"), "python3", "-c",
         "import sys; open(sys.argv[1], 'w').write(sys.argv[2])", str(spaced), "a $HOME; b"])
    for i in (1, 2):
        assert (tmp_path / "my dump" / f"out.{i}").read_text() == "a $HOME; b"  # nothing re-split or expanded
