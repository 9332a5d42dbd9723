# %% [markdown]
# # Lab 99: a tiny demo lab for the grading tests
#
# Three exercises that need nothing but Python, so the grader's tests run fast.

# %%
from course.grading import check, check_all

# %% [markdown]
# ## Exercise 99.1: add two numbers

# %%
def add(a, b):
    ### BEGIN SOLUTION 99.1: Return the sum of a and b.
    return a + b
    ### END SOLUTION


check("99.1")

# %% [markdown]
# ## Exercise 99.2: the mean of a list

# %%
def mean(values):
    ### BEGIN SOLUTION 99.2: Return the arithmetic mean of a list of numbers.
    total = sum(values)
    return total / len(values)
    ### END SOLUTION


check("99.2")

# %% [markdown]
# ## Exercise 99.3: a list of squares

# %%
### BEGIN SOLUTION 99.3: Make `squares` the list of the squares of 0, 1, 2, 3 and 4.
squares = [number**2 for number in range(5)]
### END SOLUTION

# %%
check_all(lab=99)
