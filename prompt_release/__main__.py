from prompt_release.cli import run

run()
