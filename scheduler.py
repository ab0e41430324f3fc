"""The scheduler: keeps every vendor × year fresh without anyone typing `scrapy crawl`.

    python scheduler.py                 run until SIGTERM / Ctrl-C (Heroku: the `scheduler` process)
    python scheduler.py list            every job, its trigger and next run time
    python scheduler.py run JOB_ID      run a job now, once (its schedule is unchanged)
    python scheduler.py pause JOB_ID    stop running a job until it is resumed
    python scheduler.py resume JOB_ID   run it on its schedule again

Commands are queued in PostgreSQL for the running scheduler, which applies them at once (with
none running, the command changes the job store itself); see docs/scheduler.md.
"""

from __future__ import annotations

import argparse
import logging
import sys

from christmas_spiders import config

logger = logging.getLogger("scheduler")


def _list(settings: config.Config) -> int:
    from christmas_spiders.scheduling import commands

    holder, views = commands.list_jobs(settings)
    state = f"running ({holder})" if holder else "not running"
    print(f"scheduler: {state}; {len(views)} job(s); times in {settings.schedule.timezone}")
    print("| job | trigger | next run |")
    print("| --- | --- | --- |")
    for view in views:
        when = "paused" if view.next_run is None else f"{view.next_run:%Y-%m-%d %H:%M:%S}"
        print(f"| {view.id} | {view.trigger} | {when} |")
    return 0


def _change(settings: config.Config, command: str, job_id: str) -> int:
    from christmas_spiders.scheduling import commands

    action = {"run": commands.run_now, "pause": commands.pause, "resume": commands.resume}
    try:
        message = action[command](settings, job_id)
    except (commands.UnknownJob, commands.NotApplied) as error:
        logger.error("%s", error)
        return 1
    logger.info("%s", message)
    return 0


def _run(settings: config.Config) -> int:
    from christmas_spiders.scheduling.service import JobScheduler

    scheduler = JobScheduler(settings)
    scheduler.install_signal_handlers()
    return scheduler.run()


def _command(settings: config.Config, args: argparse.Namespace) -> int:
    if args.command is None:
        return _run(settings)
    from christmas_spiders.scheduling.service import quiet_apscheduler

    quiet_apscheduler()
    if args.command == "list":
        return _list(settings)
    return _change(settings, args.command, args.job_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scheduler.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", help="every job, its trigger and next run time")
    for name, text in (
        ("run", "run a job now, once"),
        ("pause", "pause a job"),
        ("resume", "resume a paused job"),
    ):
        commands.add_parser(name, help=text).add_argument("job_id", metavar="JOB_ID")
    args = parser.parse_args(argv)

    settings = config.load_for_command()
    from christmas_spiders.errors import one_line
    from christmas_spiders.scheduling.store import DATABASE_ERRORS

    try:
        return _command(settings, args)
    except DATABASE_ERRORS as error:
        logger.error("the database is unavailable: %s", one_line(error))
        return 1


if __name__ == "__main__":
    sys.exit(main())
