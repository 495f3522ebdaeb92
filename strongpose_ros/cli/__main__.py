import sys

from strongpose_ros.cli import main

sys.exit(main())
