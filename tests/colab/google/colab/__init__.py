"""Stands in for Colab's own ``google.colab`` package in the Colab emulation.

It has no API: it exists so that ``"google.colab" in sys.modules`` holds in the emulated
kernel, as it does on Colab, and notebook code takes its Colab branch.
"""
