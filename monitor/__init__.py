"""countwatch: watches published vote-count progress and says when it stalls, goes down,
jumps or contradicts itself."""
__version__ = "0.1.0"
