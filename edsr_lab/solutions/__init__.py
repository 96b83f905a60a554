"""Reference solutions of the notebooks' "Your turn" cells: ``edsr_lab.solutions.nbNN``."""
