from mrisr.cli import main

raise SystemExit(main())
