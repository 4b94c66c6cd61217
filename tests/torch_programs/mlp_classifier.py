"""An MLP classifier in the style of PyTorch's beginner tutorials: nn.Sequential, a DataLoader
over a TensorDataset, CrossEntropyLoss, Adam with a StepLR schedule, then a few steps of the
micrograd-style loop `with torch.no_grad(): p -= lr * p.grad`.

Plain PyTorch; the tests run it once on torch and once with `torch` resolving to tinyllm.
The DataLoader does not shuffle: the two engines draw different permutations.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def build(n_features, n_hidden, n_classes):
    return nn.Sequential(
        nn.Linear(n_features, n_hidden),
        nn.ReLU(),
        nn.Linear(n_hidden, n_hidden),
        nn.Tanh(),
        nn.Linear(n_hidden, n_classes),
    )


def train(model, features, labels, adam_epochs=3, manual_epochs=2, lr=0.05):
    loader = DataLoader(TensorDataset(torch.tensor(features), torch.tensor(labels)), batch_size=16, shuffle=False)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    losses = []
    model.train()
    for _ in range(adam_epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
    for _ in range(manual_epochs):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= lr * p.grad
            losses.append(loss.item())
    return losses


def accuracy(model, features, labels):
    model.eval()
    with torch.no_grad():
        predicted = model(torch.tensor(features)).argmax(dim=1)
    return (predicted == torch.tensor(labels)).float().mean().item()
