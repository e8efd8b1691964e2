"""Graph, Block, Node, Value: a typed SSA graph with structured control flow.

A `Graph` owns a body `Block`; its inputs are the block's params and its outputs the block's
returns. `prim::If` / `prim::Loop` nodes own nested blocks. Every walk uses an explicit stack,
so deep or long graphs never touch Python's recursion limit.

    >>> from tracejit import dtypes
    >>> from tracejit.ir.types import TensorType
    >>> g = Graph()
    >>> x = g.add_input(TensorType(dtypes.float32, ("N", 4)), "x")
    >>> y = g.append("tj::relu", [x], [x.type])
    >>> g.set_outputs([y])
    >>> print(g, end="")
    graph(%x : Float(N, 4)):
      %1 : Float(N, 4) = tj::relu(%x)
      return (%1)
"""

from __future__ import annotations

import re

_NAME_RE = re.compile(r"[A-Za-z0-9_.]+\Z")


class ConstRef:
    """An attribute that names a tensor in the graph's constant table; prints as `@name`."""

    __slots__ = ("name",)

    def __init__(self, name):
        if not _NAME_RE.match(name):
            raise ValueError(f"constant name {name!r} must match [A-Za-z0-9_.]+")
        self.name = name

    def __eq__(self, other):
        return isinstance(other, ConstRef) and other.name == self.name

    def __hash__(self):
        return hash(("ConstRef", self.name))

    def __repr__(self):
        return f"@{self.name}"


class Value:
    """An SSA value: its type, the node that produces it (None for params) and its uses.

    `uses` holds (user, index) pairs; the user is a Node (input `index`) or a Block (return `index`).
    """

    __slots__ = ("type", "node", "block", "uses", "name")

    def __init__(self, type, name, node=None, block=None):  # noqa: A002 - the natural name
        self.type = type
        self.name = name
        self.node = node
        self.block = block  # for block params: the block that binds this value
        self.uses = []

    def replace_all_uses_with(self, new):
        """Make every user of this value use `new` instead (node inputs and block returns)."""
        for user, i in self.uses:
            if isinstance(user, Node):
                user.inputs[i] = new
            else:
                user.returns[i] = new
            new.uses.append((user, i))
        self.uses = []

    def __repr__(self):
        return f"%{self.name} : {self.type}"


class Node:
    """One operation: `op` (a registry name such as "tj::add", or "prim::If"), inputs, attrs, outputs."""

    __slots__ = ("op", "inputs", "attrs", "outputs", "loc", "scope", "blocks", "owner")

    def __init__(self, op, inputs=(), attrs=None, loc="", scope=""):
        self.op = op
        self.inputs = []
        self.attrs = dict(attrs or {})
        self.outputs = []
        self.loc = loc
        self.scope = scope
        self.blocks = []
        self.owner = None  # the Block this node is in
        for v in inputs:
            self.add_input(v)

    def add_input(self, v):
        v.uses.append((self, len(self.inputs)))
        self.inputs.append(v)

    def add_block(self):
        """Add an empty nested block (for prim::If / prim::Loop) and return it."""
        b = Block(owner_node=self)
        self.blocks.append(b)
        return b

    def insert_before(self, node):
        """Put the (unattached) `node` just before this one in the same block."""
        blk = self.owner
        blk._attach(node, blk.nodes.index(self))

    def insert_after(self, node):
        """Put the (unattached) `node` just after this one in the same block."""
        blk = self.owner
        blk._attach(node, blk.nodes.index(self) + 1)

    def erase(self):
        """Remove this node; its outputs must have no uses. Nested blocks are dropped too."""
        for out in self.outputs:
            if out.uses:
                users = ", ".join(_describe_user(u) for u, _ in out.uses)
                raise RuntimeError(f"cannot erase {self.op} while %{out.name} is still used by {users}")
        # Drop this node's (and its nested nodes') entries from the use lists of what they read.
        stack = [self]
        while stack:
            n = stack.pop()
            for i, v in enumerate(n.inputs):
                _remove_use(v, n, i)
            for b in n.blocks:
                for i, v in enumerate(b.returns):
                    _remove_use(v, b, i)
                stack.extend(b.nodes)
        if self.owner is not None:
            self.owner.nodes.remove(self)
            self.owner = None

    def __repr__(self):
        outs = ", ".join(f"%{o.name}" for o in self.outputs)
        ins = ", ".join(f"%{v.name}" for v in self.inputs)
        return f"{outs} = {self.op}({ins})" + (f"  # {self.loc}" if self.loc else "")


def _describe_user(user):
    return repr(user) if isinstance(user, Node) else "a block return"


def _remove_use(v, user, i):
    for k, (u, j) in enumerate(v.uses):
        if u is user and j == i:
            del v.uses[k]
            return


class Block:
    """A list of nodes with params and returns; a graph's body or a prim::If / prim::Loop branch."""

    __slots__ = ("params", "nodes", "returns", "owner_node", "graph")

    def __init__(self, owner_node=None, graph=None):
        self.params = []
        self.nodes = []
        self.returns = []
        self.owner_node = owner_node
        self.graph = graph

    def _attach(self, node, index):
        if node.owner is not None:
            raise RuntimeError(f"node {node!r} is already in a block")
        node.owner = self
        self.nodes.insert(index, node)

    def append(self, node):
        """Append an (unattached) node at the end of this block; returns it."""
        self._attach(node, len(self.nodes))
        return node

    def set_returns(self, values):
        for i, v in enumerate(self.returns):
            _remove_use(v, self, i)
        self.returns = list(values)
        for i, v in enumerate(self.returns):
            v.uses.append((self, i))


class Graph:
    """A typed SSA graph: inputs, a body block, outputs, and a table of tensor constants.

    Value names are unique within a graph: a taken name gets a suffix (`x` -> `x.1`); unnamed
    values are numbered 1, 2, ... in creation order.
    """

    def __init__(self):
        self.body = Block(graph=self)
        self.constants = {}  # name -> tensor data (any array); attributes refer to it as ConstRef
        self._names = set()
        self._counter = 0

    @property
    def inputs(self):
        return self.body.params

    @property
    def outputs(self):
        return self.body.returns

    def fresh_name(self, name=None):
        """A name not yet used in this graph, based on `name` (or the next number)."""
        if name is None:
            while True:
                self._counter += 1
                if str(self._counter) not in self._names:
                    name = str(self._counter)
                    break
        elif not _NAME_RE.match(name):
            raise ValueError(f"value name {name!r} must match [A-Za-z0-9_.]+")
        elif name in self._names:
            k = 1
            while f"{name}.{k}" in self._names:
                k += 1
            name = f"{name}.{k}"
        self._names.add(name)
        return name

    def add_input(self, type, name=None):  # noqa: A002
        return self.add_param(self.body, type, name)

    def add_param(self, block, type, name=None):  # noqa: A002
        """Add a parameter (graph input or block param) to `block`."""
        v = Value(type, self.fresh_name(name), block=block)
        block.params.append(v)
        return v

    def create(self, op, inputs=(), out_types=(), attrs=None, loc="", scope="", names=None):
        """A new node (not yet in any block) with one output per type in `out_types`."""
        n = Node(op, inputs, attrs, loc, scope)
        for k, t in enumerate(out_types):
            n.outputs.append(Value(t, self.fresh_name(names[k] if names else None), node=n))
        return n

    def append(self, op, inputs=(), out_types=(), attrs=None, loc="", scope="", block=None):
        """Create a node at the end of `block` (the body by default); returns its only output, or the node."""
        n = (block or self.body).append(self.create(op, inputs, out_types, attrs, loc, scope))
        return n.outputs[0] if len(n.outputs) == 1 else n

    def set_outputs(self, values):
        self.body.set_returns(values)

    def nodes(self):
        """Every node, nested ones included, in text order (pre-order), without recursion."""
        stack = list(reversed(self.body.nodes))
        while stack:
            n = stack.pop()
            yield n
            # Pushed in reverse so block0's first node is visited next (pre-order).
            for b in reversed(n.blocks):
                stack.extend(reversed(b.nodes))

    def __str__(self):
        from tracejit.ir.printer import print_graph

        return print_graph(self)


def topological_order(block):
    """The nodes of `block` sorted so each comes after the nodes (of this block) it depends on.

    Uses inside nested blocks count as uses by the owning node. Stable: an already valid order
    is returned unchanged. Raises ValueError on a cycle.
    """
    index = {id(n): i for i, n in enumerate(block.nodes)}
    deps = []
    for n in block.nodes:
        d = set()
        stack = [n]
        while stack:
            m = stack.pop()
            for v in m.inputs:
                p = v.node
                # Climb from the producer to the node of *this* block that contains it.
                while p is not None and p.owner is not block:
                    p = p.owner.owner_node if p.owner is not None else None
                if p is not None and p is not n:
                    d.add(index[id(p)])
            for b in m.blocks:
                stack.extend(b.nodes)
                for v in b.returns:
                    p = v.node
                    while p is not None and p.owner is not block:
                        p = p.owner.owner_node if p.owner is not None else None
                    if p is not None and p is not n:
                        d.add(index[id(p)])
        deps.append(d)
    import heapq

    users = [[] for _ in block.nodes]
    count = [len(d) for d in deps]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    ready = [i for i, c in enumerate(count) if c == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(block.nodes[i])
        for u in users[i]:
            count[u] -= 1
            if count[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(block.nodes):
        raise ValueError("the block has a dependency cycle")
    return order
