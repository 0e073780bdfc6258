import os
import sys

# bench/ for workloads.py and torch_peer.py; the repository root for rnnfast when it is built in place, not installed.
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
