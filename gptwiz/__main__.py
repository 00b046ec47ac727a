from gptwiz.cli import main

raise SystemExit(main())
