from . import lifeline

lifeline.arm()  # before the slow imports: the step dies with its parent (geokd.lifeline)

from .cli import main  # noqa: E402

raise SystemExit(main())
