# %% [markdown]
# A submission whose cells crash: one raises, one has a syntax error (so `mean` never exists).


# %%
def add(a, b):
    return a + b


# %%
raise RuntimeError("this cell crashes, the next ones must still run")


# %%
def mean(values) return sum(values) / len(values)


# %%
squares = [number * number for number in range(5)]
