"""A first look at the engine: build a tiny graph, backward through it, check it with gradcheck."""

import tinyllm as tl
import tinyllm.nn.functional as F

tl.manual_seed(0)
x = tl.randn(4, 3, requires_grad=True)
w = tl.randn(3, 5, requires_grad=True)
targets = tl.tensor([0, 2, 4, 1])

loss = F.cross_entropy(F.gelu(x @ w), targets)
loss.backward()
print("loss:", loss.item())
print("d loss / d w:\n", w.grad)

x64 = tl.randn(2, 3, dtype="float64", requires_grad=True)
print("gradcheck of log_softmax:", tl.gradcheck(lambda t: F.log_softmax(t, dim=-1), [x64]))
