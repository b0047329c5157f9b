from prompt_release.cli import main

raise SystemExit(main())
