from dane_monitor.cli import main

raise SystemExit(main())
