# %% [markdown]
# A half-done submission: 99.1 and 99.3 are solved, 99.2 is still the stub.

# %%
def add(a, b):
    return a + b


# %%
def mean(values):
    raise NotImplementedError("Exercise 99.2: Return the arithmetic mean of a list of numbers.")


# %%
squares = [0, 1, 4, 9, 16]
