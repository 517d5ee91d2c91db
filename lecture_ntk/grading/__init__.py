"""Exercises from one source, and a grader that does not trust the submission.

Modules, one job each:

- ``notebook``   read .ipynb / Jupytext .py notebooks; nbgrader's markers as text
- ``assign``     generate exercises/ from the solution masters in solutions/; check them
- ``spec``       ``spec.question(...)``: how a master describes the grading of a question
- ``reference``  execute a master's trusted code; probe inputs and reference outputs
- ``harness``    the program run inside the child process next to a submission
- ``sandbox``    start the child isolated and kill everything it left behind
- ``compare``    validate the child's plain-number outputs and compare them
- ``gradebook``  the CSV gradebook and feedback files, written atomically
- ``grade``      put it together: one child per submission, in parallel, resumable

Commands: ``python -m lecture_ntk.grading assign [--check]`` and
``python -m lecture_ntk.grading grade SUBMISSION_OR_FOLDER --out gradebook.csv
--feedback feedback/ [--timeout S] [--memory MB] [--jobs N] [--sandbox] [--regrade NAME]``.
What is and is not protected: README.md in this folder.
"""
