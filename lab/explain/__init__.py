"""Performance investigations: where each op's cost goes (`hashlab explain`) and what a change
made slower (the gate's differential profiles, `lab.gate.differential`).

One job per module:
- `callgrind_out`: one callgrind dump read per function (callgrind's documented format);
- `folded`: folded stacks (from callgrind's call graph, or py-spy's samples) and what is
  derived from them;
- `flamegraph`: folded stacks drawn as SVG flame graphs, plain or differential;
- `profiles`: an op's profile as the bench JSON keeps it, and its top functions;
- `counted`: an op and its baseline counted under callgrind's cache model, per id;
- `child`, `sampled`: an op's wall-clock profile from py-spy, and its memory;
- `run`, `summary`, `page`: `hashlab explain` itself, its terminal summary and index.html.
"""
