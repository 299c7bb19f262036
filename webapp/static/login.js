"use strict";
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.hidden = true;
  try {
    await api("POST", "/api/session/login", {
      name: document.getElementById("name").value,
      password: document.getElementById("password").value,
    });
    window.location.assign("/");
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
});
