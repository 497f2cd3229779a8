# From Flower's examples/quickstart-pytorch/pytorchexample/task.py (https://github.com/adap/flower, commit
# fdef7afb1dca), Apache License 2.0 (see ../LICENSE-NOTICE.md). Changed: only the data loading. `load_data` reads
# this machine's partition from a local safetensors file (CIFAR-10-shaped images and labels) instead of
# downloading CIFAR-10 through flwr-datasets; `load_centralized_dataset` reads a local file the same way. Net,
# train and test are Flower's, unchanged.

"""pytorchexample: A Flower / PyTorch app."""

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.utils.data import DataLoader


class Net(nn.Module):
    """Model (simple CNN adapted from 'PyTorch: A 60 Minute Blitz')"""

    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LocalImages(torch.utils.data.Dataset):
    """Rows of a local safetensors file as Flower's batches: {"img": (3, 32, 32) float, "label": int}."""

    def __init__(self, img, label):
        self.img, self.label = img, label

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        return {"img": self.img[i], "label": self.label[i]}


def _local(name):
    tensors = load_file(str(Path(os.environ["QUICKSTART_DATA"]) / name))
    return tensors["img"], tensors["label"]


def load_data(partition_id: int, num_partitions: int, batch_size: int):
    """Load this node's partition from local data (partition-<id>.safetensors: img, label)."""
    img, label = _local(f"partition-{partition_id}.safetensors")
    # Divide data on each node: 80% train, 20% test
    cut = int(0.8 * len(label))
    generator = torch.Generator().manual_seed(42)
    trainloader = DataLoader(
        LocalImages(img[:cut], label[:cut]), batch_size=batch_size, shuffle=True, generator=generator
    )
    testloader = DataLoader(LocalImages(img[cut:], label[cut:]), batch_size=batch_size)
    return trainloader, testloader


def load_centralized_dataset():
    """Load test set and return dataloader."""
    img, label = _local("centralized.safetensors")
    return DataLoader(LocalImages(img, label), batch_size=128)


def train(net, trainloader, epochs, lr, device):
    """Train the model on the training set."""
    net.to(device)  # move model to GPU if available
    criterion = torch.nn.CrossEntropyLoss().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    net.train()
    running_loss = 0.0
    for _ in range(epochs):
        for batch in trainloader:
            images = batch["img"].to(device)
            labels = batch["label"].to(device)
            optimizer.zero_grad()
            loss = criterion(net(images), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
    avg_trainloss = running_loss / (epochs * len(trainloader))
    return avg_trainloss


def test(net, testloader, device):
    """Validate the model on the test set."""
    net.to(device)
    criterion = torch.nn.CrossEntropyLoss()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for batch in testloader:
            images = batch["img"].to(device)
            labels = batch["label"].to(device)
            outputs = net(images)
            loss += criterion(outputs, labels).item()
            correct += (torch.max(outputs.data, 1)[1] == labels).sum().item()
    accuracy = correct / len(testloader.dataset)
    loss = loss / len(testloader)
    return loss, accuracy
